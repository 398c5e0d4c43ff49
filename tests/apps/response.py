# Response-side behaviour: headers, iterable close(), Content-Length, wsgi.file_wrapper, HEAD.
# Dispatches on PATH_INFO. Events are appended to <root>/state/log (created 0666 by the test),
# one line each, so the test can see what happened inside Apache.
import io
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join(ROOT, 'state', 'log')
DATA = os.path.join(ROOT, 'apps', 'data.bin')


def record(line):
    with open(STATE, 'a') as f:
        f.write(line + '\n')


class Body:
    """An iterable with close(): yields `count` chunks, optionally raising at item `fail_at`."""

    def __init__(self, tag, chunk, count, fail_at=None, delay=0.0):
        self.tag, self.chunk, self.count = tag, chunk, count
        self.fail_at, self.delay, self.i = fail_at, delay, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i == self.fail_at:
            raise RuntimeError('body-failure-%s' % self.tag)
        if self.i >= self.count:
            raise StopIteration
        self.i += 1
        if self.delay:
            time.sleep(self.delay)
        return self.chunk

    def close(self):
        record('close %s after %d' % (self.tag, self.i))


class ClosingList(list):
    """A list subclass with close(): not a plain list, so its close() must be called."""

    def __init__(self, tag, items):
        super().__init__(items)
        self.tag = tag

    def close(self):
        record('close %s list of %d' % (self.tag, len(self)))


class RecordingFile(io.FileIO):
    def __init__(self, path, tag):
        super().__init__(path, 'rb')
        self.tag = tag

    def close(self):
        if not self.closed:
            record('file-close %s' % self.tag)
        super().close()


class RecordingBytesIO(io.BytesIO):
    def __init__(self, data, tag):
        super().__init__(data)
        self.tag, self.reads = tag, []

    def read(self, size=-1):
        self.reads.append(size)
        return super().read(size)

    def close(self):
        record('bytesio-close %s reads=%s' % (self.tag, ','.join(map(str, self.reads))))
        super().close()


def application(environ, start_response):
    path = environ['PATH_INFO']
    q = environ.get('QUERY_STRING', '')
    text = [('Content-Type', 'text/plain')]

    if path == '/cookies':
        start_response('200 OK', text + [
            ('X-Order', '1'), ('Set-Cookie', 'a=1; Path=/'), ('X-Order', '2'),
            ('Set-Cookie', 'b=2'), ('Set-Cookie', 'c=3; HttpOnly'), ('X-Order', '3')])
        return [b'cookies\n']

    if path == '/close/normal':
        start_response('200 OK', text)
        return Body(q, b'chunk;', 3)
    if path == '/close/raise':
        start_response('200 OK', text)
        return Body(q, b'chunk;', 3, fail_at=1)
    if path == '/close/raise-first':
        start_response('200 OK', text)
        return Body(q, b'chunk;', 3, fail_at=0)
    if path == '/close/disconnect':
        start_response('200 OK', text)
        return Body(q, b'x' * 65536, 2000, delay=0.005)
    if path == '/close/list-subclass':
        start_response('200 OK', text)
        return ClosingList(q, [b'a;', b'b;'])
    if path == '/close/write-then-list':
        write = start_response('200 OK', text)
        write(b'w;')
        return Body(q, b'chunk;', 2)

    if path == '/cl/long':
        start_response('200 OK', text + [('Content-Length', '5')])
        return [b'0123456789']
    if path == '/cl/long-gen':
        start_response('200 OK', text + [('Content-Length', '5')])
        return Body(q, b'0123', 100)
    if path == '/cl/short':
        start_response('200 OK', text + [('Content-Length', '10')])
        return [b'01234']
    if path == '/cl/exact-write':
        write = start_response('200 OK', text + [('Content-Length', '6')])
        write(b'abc')
        return [b'def']

    if path == '/fw/file':
        offset = int(q or 0)
        f = RecordingFile(DATA, 'file-%d' % offset)
        f.seek(offset)
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](f, 65536)
    if path == '/fw/buffered':
        f = open(DATA, 'rb')
        f.read(10)  # the buffered reader reads ahead; the logical position is 10
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](f)
    if path == '/fw/file-cl':
        f = RecordingFile(DATA, 'file-cl')
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', q)])
        return environ['wsgi.file_wrapper'](f)
    if path == '/fw/bytesio':
        with open(DATA, 'rb') as f:
            data = f.read(int(q))
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](RecordingBytesIO(data, 'bio'), 1000)

    if path == '/head':
        record('run %s' % environ['REQUEST_METHOD'])
        body = b'0123456789' * 10
        start_response('200 OK', text + [('Content-Length', str(len(body))),
                                         ('X-Custom', 'yes'), ('Set-Cookie', 's=1')])
        return [body]
    if path == '/head-gen':
        record('run-gen %s' % environ['REQUEST_METHOD'])
        start_response('200 OK', text + [('X-Custom', 'gen')])
        return Body('head-gen-' + environ['REQUEST_METHOD'], b'abc', 3)

    if path == '/status':
        # The application's own status line and body, whatever the status.
        start_response(q.replace('%20', ' '), text + [('X-Status', q[:3])])
        return [b'app body for ' + q.encode() + b'\n']

    start_response('404 Not Found', text)
    return [b'no such test endpoint\n']
