# The daemon-mode test application (tests/daemon_*.rs), dispatched on PATH_INFO.
# Every route answers plain text; "facts" are "key=value" lines.
import hashlib
import io
import os
import sys
import time

import mod_wsgi


def _text(start_response, body, status='200 OK', headers=()):
    data = body.encode('utf-8')
    start_response(status, [('Content-Type', 'text/plain'),
                            ('Content-Length', str(len(data)))] + list(headers))
    return [data]


def facts(environ, start_response):
    lines = [
        'pid=%d' % os.getpid(),
        'ppid=%d' % os.getppid(),
        'uid=%d' % os.getuid(),
        'euid=%d' % os.geteuid(),
        'gid=%d' % os.getgid(),
        'module_process_group=%s' % mod_wsgi.process_group,
        'environ_process_group=%s' % environ.get('mod_wsgi.process_group'),
        'multiprocess=%s' % environ['wsgi.multiprocess'],
        'multithread=%s' % environ['wsgi.multithread'],
        'cwd=%s' % os.getcwd(),
    ]
    return _text(start_response, ''.join(l + '\n' for l in lines))


def _describe(v):
    # Plain values as they are; objects by type, so both modes can be compared.
    if isinstance(v, (str, bytes, int, float, bool, tuple)) or v is None:
        return ascii(v)
    return '<%s>' % type(v).__name__


def dump(environ, start_response):
    body = ''.join('%s\t%s\n' % (k, _describe(environ[k])) for k in sorted(environ))
    return _text(start_response, body)


def crash_exit(environ, start_response):
    os._exit(1)


def crash_kill(environ, start_response):
    import signal
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(5)


def crash_segv(environ, start_response):
    import ctypes
    ctypes.string_at(0)


def sleeping_function_for_timeout(seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        time.sleep(0.05)


def sleep(environ, start_response):
    seconds = float(environ.get('QUERY_STRING') or '1')
    sleeping_function_for_timeout(seconds)
    return _text(start_response, 'slept %s pid=%d\n' % (seconds, os.getpid()))


def setenv(environ, start_response):
    key, _, value = environ['QUERY_STRING'].partition('=')
    os.environ[key] = value
    return _text(start_response, 'set %s\n' % key)


def getenv(environ, start_response):
    key = environ['QUERY_STRING']
    return _text(start_response, '%s=%r\n' % (key, os.environ.get(key)))


def cookies(environ, start_response):
    data = b'cookies\n'
    start_response('200 OK', [
        ('X-First', '1'),
        ('Set-Cookie', 'a=1; Path=/'),
        ('Content-Type', 'text/plain'),
        ('Set-Cookie', 'b=2; Path=/'),
        ('X-Middle', '2'),
        ('Set-Cookie', 'c=3; Path=/'),
        ('X-Last', '3'),
        ('Content-Length', str(len(data))),
    ])
    return [data]


def upload(environ, start_response):
    h = hashlib.sha256()
    n = 0
    inp = environ['wsgi.input']
    while True:
        block = inp.read(65536)
        if not block:
            break
        h.update(block)
        n += len(block)
    return _text(start_response, 'len=%d sha256=%s content_length=%r\n'
                 % (n, h.hexdigest(), environ.get('CONTENT_LENGTH')))


def echo(environ, start_response):
    # Body read in blocks (known length) or with read() (chunked: no CONTENT_LENGTH).
    inp = environ['wsgi.input']
    if environ.get('CONTENT_LENGTH'):
        parts = []
        while True:
            block = inp.read(65536)
            if not block:
                break
            parts.append(block)
        data = b''.join(parts)
    else:
        data = inp.read()
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(len(data))),
                              ('X-Content-Length', environ.get('CONTENT_LENGTH', '-'))])
    return [data]


def upload_readall(environ, start_response):
    data = environ['wsgi.input'].read()
    return _text(start_response, 'len=%d sha256=%s\n'
                 % (len(data), hashlib.sha256(data).hexdigest()))


def _big_path(environ):
    # big.bin next to the script, or the file named by the query string.
    name = environ.get('QUERY_STRING') or 'big.bin'
    return os.path.join(os.path.dirname(environ['SCRIPT_FILENAME']), name)


def download_file(environ, start_response):
    f = open(_big_path(environ), 'rb')
    size = os.fstat(f.fileno()).st_size
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(size))])
    return environ['wsgi.file_wrapper'](f, 65536)


def download_bytesio(environ, start_response):
    with open(_big_path(environ), 'rb') as f:
        data = f.read()
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return environ['wsgi.file_wrapper'](io.BytesIO(data), 100000)


def stream(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b'first-chunk\n'
    time.sleep(1)
    yield b'second-chunk\n'


def stream_write(environ, start_response):
    write = start_response('200 OK', [('Content-Type', 'text/plain')])
    write(b'written-first\n')
    time.sleep(1)
    return [b'returned-second\n']


def raise_before(environ, start_response):
    raise RuntimeError('daemon-boom-before-output pid=%d' % os.getpid())


def raise_after(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    yield b'partial output\n'
    raise RuntimeError('daemon-boom-after-output pid=%d' % os.getpid())


ROUTES = {
    '/facts': facts,
    '/dump': dump,
    '/crash-exit': crash_exit,
    '/crash-kill': crash_kill,
    '/crash-segv': crash_segv,
    '/sleep': sleep,
    '/setenv': setenv,
    '/getenv': getenv,
    '/cookies': cookies,
    '/upload': upload,
    '/upload-readall': upload_readall,
    '/echo': echo,
    '/download-file': download_file,
    '/download-bytesio': download_bytesio,
    '/stream': stream,
    '/stream-write': stream_write,
    '/raise-before': raise_before,
    '/raise-after': raise_after,
}


def application(environ, start_response):
    # The first path segment picks the route; the rest is free (e.g. /dump/extra/path).
    path = environ.get('PATH_INFO', '')
    route = ROUTES.get('/' + path[1:].split('/', 1)[0] if path else '')
    if route is None:
        return _text(start_response, 'no route %r\n' % environ.get('PATH_INFO'), '404 Not Found')
    return route(environ, start_response)
