# start_response() as mod_wsgi 6 checks it (the cases of mod_wsgi's tests/wsgi/start_response.*):
# each /case?name answers "<exception type>:<message>;end" for what start_response raised.
import sys
from urllib.parse import parse_qs

STATUS = {
    'no-digits': 'OK',
    'mixed': '20X OK',
    'four-digits': '2000 OK',
    'no-space': '200OK',
    'control-char': '200 OK\r\nX-Injected: yes',
    'bytes': b'200 OK',
}

HEADER = {
    'empty-name': ('', 'value'),
    'space-name': ('X Foo', 'value'),
    'control-name': ('X\tFoo', 'value'),
    'cr-value': ('X-Foo', 'line1\r\nline2'),
    'lf-value': ('X-Foo', 'line1\nline2'),
    'non-string-name': (42, 'value'),
    'non-latin1-value': ('X-Foo', '\u65e5\u672c'),
    'not-a-tuple': 'X-Foo:value',
    'wrong-tuple-size': ('a', 'b', 'c'),
}

HEADERS = {
    'string': 'Content-Type: text/plain',
    'tuple': (('Content-Type', 'text/plain'),),
    'dict': {'Content-Type': 'text/plain'},
}

TEXT = [('Content-Type', 'text/plain')]


def caught(start_response, call):
    try:
        call()
    except Exception as e:
        start_response('200 OK', TEXT)
        return [('%s:%s;end' % (type(e).__name__, e)).encode()]
    start_response('200 OK', TEXT)
    return [b'no-error-raised;end']


def application(environ, start_response):
    path = environ['PATH_INFO']
    case = parse_qs(environ.get('QUERY_STRING', '')).get('case', [''])[0]
    if path == '/status':
        return caught(start_response, lambda: start_response(STATUS[case], TEXT))
    if path == '/header':
        return caught(start_response, lambda: start_response('200 OK', TEXT + [HEADER[case]]))
    if path == '/headers-type':
        return caught(start_response, lambda: start_response('200 OK', HEADERS[case]))
    if path == '/non-tuple-exc-info':
        return caught(start_response, lambda: start_response('200 OK', TEXT, 'not-a-tuple'))
    if path == '/second-before-output':
        start_response('200 OK', TEXT + [('X-First', '1')])
        start_response('201 Created', TEXT + [('X-Second', '2')])
        return [b'second-wins']
    if path == '/exc-info-before-output':
        start_response('200 OK', TEXT + [('X-Before', 'first')])
        try:
            raise RuntimeError('before-headers-sent')
        except RuntimeError:
            start_response("418 I'm a teapot", TEXT + [('X-After', 'second')], sys.exc_info())
        return [b'second-headers-win']
    if path == '/second-after-output':
        write = start_response('200 OK', TEXT)
        write(b'pre-')
        try:
            start_response('500 Internal Server Error', TEXT)
        except RuntimeError as e:
            write(('err:%s' % e).encode())
        return []
    if path == '/exc-info-after-output':
        write = start_response('200 OK', TEXT)
        write(b'headers-sent-')
        try:
            raise RuntimeError('intentional-exc-info')
        except RuntimeError:
            try:
                start_response('500 Internal Server Error', TEXT, sys.exc_info())
            except RuntimeError as e:
                write(('reraised:%s' % e).encode())
        return []
    if path == '/no-start-response':
        return [b'should not be sent']
    start_response('404 Not Found', TEXT)
    return [b'unknown']
