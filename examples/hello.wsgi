"""The smallest useful WSGI application: `oxwsgi serve examples/hello.wsgi`.

It answers every URL with a short plain-text page saying where it runs (daemon process group or
embedded, interpreter, pid), which is handy for checking a new setup.
"""

import os
import sys


def application(environ, start_response):
    try:
        import mod_wsgi
        group = mod_wsgi.process_group or '(embedded)'
    except ImportError:
        group = '(not under Apache)'
    body = (
        'Hello from oxwsgi!\n'
        'path:          %s%s\n'
        'process group: %s\n'
        'application group: %r\n'
        'python:        %s\n'
        'prefix:        %s\n'
        'pid:           %d\n'
    ) % (
        environ.get('SCRIPT_NAME', ''),
        environ.get('PATH_INFO', ''),
        group,
        environ.get('mod_wsgi.application_group', ''),
        sys.version.split()[0],
        sys.prefix,
        os.getpid(),
    )
    data = body.encode('utf-8')
    start_response('200 OK', [
        ('Content-Type', 'text/plain; charset=utf-8'),
        ('Content-Length', str(len(data))),
    ])
    return [data]
