# Error paths: logging, exceptions before/after output, start_response validation.
# Dispatches on PATH_INFO.
import logging
import sys


_stash = []


def ok(start_response, body=b'ok\n', status='200 OK'):
    start_response(status, [('Content-Type', 'text/plain')])
    return [body]


def application(environ, start_response):
    path = environ['PATH_INFO']
    q = environ.get('QUERY_STRING', '')

    if path == '/errors':
        err = environ['wsgi.errors']
        err.write('wsgi-errors-line-%s\n' % q)
        err.writelines(['wsgi-errors-writelines-%s\n' % q])
        err.write('wsgi-errors-unterminated-%s' % q)  # flushed at the end of the request
        return ok(start_response)
    if path == '/print':
        print('print-line-%s' % q)
        print('print-stderr-%s' % q, file=sys.stderr)
        return ok(start_response)
    if path == '/logging':
        logging.getLogger('oxwsgi.test').warning('logging-line-%s', q)
        return ok(start_response)
    if path == '/raise-before':
        raise RuntimeError('boom-before-output-%s' % q)
    if path == '/system-exit':
        raise SystemExit('system-exit-%s' % q)
    if path == '/raise-after-start':
        # start_response called, nothing written yet: still a clean 500.
        start_response('200 OK', [('Content-Type', 'text/plain')])
        raise RuntimeError('boom-after-start-%s' % q)
    if path == '/raise-after-output':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def gen():
            yield b'partial-body-'
            raise RuntimeError('boom-after-output-%s' % q)
        return gen()
    if path == '/raise-after-output-cl':
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '100')])

        def gen():
            yield b'partial-body-'
            raise RuntimeError('boom-after-output-cl-%s' % q)
        return gen()

    # ---- start_response validation ----
    if path == '/status':
        status = {
            'no-reason': '200',
            'two-digits': '20 OK',
            'letters': 'abc OK',
            'crlf': '200 OK\r\nX-Injected: yes',
            'lf': '200 OK\nX-Injected: yes',
            'bytes': b'200 OK',
        }[q]
        start_response(status, [('Content-Type', 'text/plain')])
        return [b'should not be sent\n']
    if path == '/header':
        name, value = {
            'value-crlf': ('X-Bad', 'a\r\nX-Injected: yes'),
            'value-lf': ('X-Bad', 'a\nX-Injected: yes'),
            'value-cr': ('X-Bad', 'a\rX-Injected: yes'),
            'name-crlf': ('X-Bad\r\nX-Injected', 'yes'),
            'name-colon': ('X-Bad:X-Injected', 'yes'),
            'non-latin1': ('X-Bad', 'euro \u20ac'),
            'latin1': ('X-Latin', 'caf\xe9'),
            'bytes-value': ('X-Bad', b'bytes'),
        }[q]
        start_response('200 OK', [('Content-Type', 'text/plain'), (name, value)])
        return [b'should not be sent\n']
    if path == '/headers-tuple':
        start_response('200 OK', (('Content-Type', 'text/plain'),))
        return [b'should not be sent\n']
    if path == '/headers-not-pairs':
        start_response('200 OK', [('Content-Type', 'text/plain', 'extra')])
        return [b'should not be sent\n']
    if path == '/twice':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        start_response('201 Created', [('Content-Type', 'text/plain')])
        return [b'second call accepted\n']
    if path == '/twice-caught':
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-First', '1')])
        try:
            start_response('201 Created', [('Content-Type', 'text/plain')])
        except Exception as e:
            return [('second call raised %s\n' % type(e).__name__).encode()]
        return [b'second call accepted\n']
    if path == '/exc-info':
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Discarded', '1')])
        try:
            raise ValueError('handled')
        except ValueError:
            start_response('503 Service Unavailable', [('Content-Type', 'text/plain'),
                                                       ('X-Replacement', '1')], sys.exc_info())
        return [b'replaced\n']
    if path == '/exc-info-after-output':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        write(b'already-sent-')
        try:
            raise ValueError('exc-info-after-output-%s' % q)
        except ValueError:
            start_response('500 Oops', [('Content-Type', 'text/plain')], sys.exc_info())
        return [b'not reached\n']
    if path == '/write':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        assert callable(write)
        write(b'from-write-1,')
        write(b'from-write-2,')
        return [b'from-iterable-1,', b'from-iterable-2']
    if path == '/lazy-start':
        # start_response called from inside the iterable, on the first next().
        def gen():
            start_response('202 Accepted', [('Content-Type', 'text/plain'), ('X-Lazy', '1')])
            yield b'lazy-'
            yield b'body'
        return gen()
    if path == '/lazy-start-empty':
        def gen():
            start_response('204 No Content', [('X-Lazy', '2')])
            return
            yield
        return gen()
    if path == '/no-start-response':
        return [b'body without start_response\n']
    if path == '/str-item':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return ['a str, not bytes']
    if path == '/str-item-later':
        start_response('200 OK', [('Content-Type', 'text/plain')])

        def gen():
            yield b'bytes-first-'
            yield 'then a str'
        return gen()
    if path == '/str-item-later-list':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'bytes-first-', 'then a str']
    if path == '/stash':
        # Keep the request's objects past its end (a bug in an app; must not crash Apache).
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        _stash[:] = [environ['wsgi.input'], write, start_response, environ['wsgi.errors']]
        return [b'stashed\n']
    if path == '/use-stash':
        inp, write, old_start_response, errors = _stash
        results = []
        for name, call in [('input.read', lambda: inp.read()),
                           ('input.readline', lambda: inp.readline()),
                           ('write', lambda: write(b'late')),
                           ('start_response', lambda: old_start_response('200 OK', [])),
                           ('errors.write', lambda: errors.write('stale-errors-line\nstale-partial'))]:
            try:
                call()
                results.append('%s ok' % name)
            except Exception as e:
                results.append('%s %s' % (name, type(e).__name__))
        return ok(start_response, ('\n'.join(results) + '\n').encode())
    if path == '/thread-write':
        import threading
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        seen = []

        def other():
            try:
                write(b'from another thread')
                seen.append('ok')
            except Exception as e:
                seen.append(type(e).__name__)
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return [('other thread: %s\n' % seen[0]).encode()]
    if path == '/none':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return None
    return ok(start_response, b'fallback ' + path.encode('latin-1') + b'\n')
