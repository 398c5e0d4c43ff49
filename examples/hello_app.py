"""A WSGI application in an importable module, for `module:callable` serving:

    oxwsgi serve hello_app:app --python-path examples

`app` is a small class-based WSGI callable that echoes the request method and path.
"""

import json


class App:
    def __call__(self, environ, start_response):
        payload = {
            'method': environ['REQUEST_METHOD'],
            'script_name': environ.get('SCRIPT_NAME', ''),
            'path_info': environ.get('PATH_INFO', ''),
            'query': environ.get('QUERY_STRING', ''),
            'multithread': environ['wsgi.multithread'],
            'multiprocess': environ['wsgi.multiprocess'],
        }
        data = (json.dumps(payload, indent=2, sort_keys=True) + '\n').encode('utf-8')
        start_response('200 OK', [
            ('Content-Type', 'application/json'),
            ('Content-Length', str(len(data))),
        ])
        return [data]


app = App()
