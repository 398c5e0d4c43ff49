# Compatibility comparison (tests/compat_mod_wsgi.rs): response-side behaviours, dispatched on
# PATH_INFO.
import sys


def application(environ, start_response):
    path = environ['PATH_INFO']
    text = [('Content-Type', 'text/plain')]

    if path == '/custom-status':
        start_response('299 Custom', text)
        return [b'custom\n']
    if path == '/unknown-reason':
        start_response('200 Everything Fine', text)
        return [b'ok\n']
    if path == '/header-case':
        start_response('200 OK', [('content-type', 'text/plain'), ('x-lower', 'a'),
                                  ('X-UPPER', 'b'), ('X-Mixed-Case', 'c'), ('x-lower', 'd')])
        return [b'case\n']
    if path == '/list':
        start_response('200 OK', text)
        return [b'one;', b'two;', b'three\n']
    if path == '/list1':
        start_response('200 OK', text)
        return [b'single\n']
    if path == '/gen':
        start_response('200 OK', text)
        return (x for x in [b'g1;', b'g2;', b'g3\n'])
    if path == '/str-body':
        start_response('200 OK', text)
        return ['not bytes\n']
    if path == '/str-body-gen':
        start_response('200 OK', text)
        return (x for x in [b'first;', 'second\n'])
    if path == '/raise-before':
        raise RuntimeError('compat-raise-before-start-response')
    if path == '/raise-after':
        start_response('200 OK', text)
        raise RuntimeError('compat-raise-after-start-response')
    if path == '/raise-in-gen':
        def g():
            yield b'part1;'
            raise RuntimeError('compat-raise-in-generator')
        start_response('200 OK', text)
        return g()
    if path == '/no-start-response':
        return [b'oops\n']
    if path == '/empty':
        start_response('200 OK', text)
        return []
    if path == '/empty-bytes':
        start_response('200 OK', text)
        return [b'']
    if path == '/304':
        start_response('304 Not Modified', [('ETag', '"x"')])
        return []
    if path == '/304-body':
        start_response('304 Not Modified', [('ETag', '"x"'), ('Content-Type', 'text/plain')])
        return [b'should not be sent\n']
    if path == '/204':
        start_response('204 No Content', [])
        return []
    if path == '/204-body':
        start_response('204 No Content', text)
        return [b'should not be sent\n']
    if path == '/cl-short':
        # Content-Length larger than the body.
        start_response('200 OK', text + [('Content-Length', '100')])
        return [b'only ten!\n']
    if path == '/cl-long':
        # Content-Length smaller than the body.
        start_response('200 OK', text + [('Content-Length', '5')])
        return [b'more than five bytes\n']
    if path == '/cl-exact':
        start_response('200 OK', text + [('Content-Length', '6')])
        return [b'exact\n']
    if path == '/cookies':
        start_response('200 OK', text + [
            ('X-Order', '1'), ('Set-Cookie', 'a=1; Path=/'), ('X-Order', '2'),
            ('Set-Cookie', 'b=2'), ('Set-Cookie', 'c=3; HttpOnly'), ('X-Order', '3')])
        return [b'cookies\n']
    if path == '/redirect':
        start_response('302 Found', [('Location', 'http://example.com/target?a=1'),
                                     ('Content-Type', 'text/html; charset=utf-8'),
                                     ('Content-Length', '0')])
        return []
    if path == '/redirect-relative':
        start_response('302 Found', [('Location', '/elsewhere'), ('Content-Length', '0')])
        return []
    if path == '/status-lower':
        start_response('404 not found here', text)
        return [b'nf\n']
    if path == '/bad-status':
        start_response('abc', text)
        return [b'bad\n']
    if path == '/bad-header-type':
        start_response('200 OK', [('X-Int', 5)])
        return [b'bad\n']
    if path == '/newline-header':
        start_response('200 OK', [('X-Bad', 'a\r\nInjected: yes')])
        return [b'bad\n']
    if path == '/hop-by-hop':
        start_response('200 OK', text + [('Connection', 'close')])
        return [b'hop\n']
    if path == '/exc-info':
        start_response('200 OK', text)
        try:
            raise ValueError('compat-late-error')
        except ValueError:
            start_response('500 Internal Server Error', text, sys.exc_info())
        return [b'replaced\n']
    if path == '/exc-info-early':
        try:
            raise ValueError('compat-early-error')
        except ValueError:
            start_response('503 Service Unavailable', text, sys.exc_info())
        return [b'replaced early\n']
    if path == '/write':
        write = start_response('200 OK', text)
        write(b'written;')
        return [b'returned\n']
    if path == '/content-type-missing':
        start_response('200 OK', [])
        return [b'no type\n']
    if path == '/none-body':
        start_response('200 OK', text)
        return None
    if path == '/bytes-body':
        start_response('200 OK', text)
        return b'abc'
    if path == '/status-only-code':
        start_response('200', text)
        return [b'x\n']
    if path == '/stream':
        # Three parts with pauses: a streaming response must reach the client part by part.
        import time
        def g():
            yield b'first;'
            time.sleep(0.6)
            yield b'second;'
            time.sleep(0.6)
            yield b'third\n'
        start_response('200 OK', text)
        return g()
    if path == '/head-like-werkzeug':
        # Werkzeug/Flask answer HEAD with the full Content-Length and an empty iterable.
        body = b'thirteen byte'
        start_response('200 OK', text + [('Content-Length', str(len(body)))])
        if environ['REQUEST_METHOD'] == 'HEAD':
            return []
        return [body]
    if path == '/304-with-cl':
        # A conditional GET answered with the entity's headers, as frameworks do.
        start_response('304 Not Modified', [('ETag', '"x"'), ('Content-Length', '13')])
        return []
    if path == '/204-with-cl':
        start_response('204 No Content', [('Content-Length', '0')])
        return []
    start_response('404 Not Found', text)
    return [b'unknown route\n']
