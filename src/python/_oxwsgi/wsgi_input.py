"""wsgi.input: the request body, read through the native `read(ctx, size, partial=False)`."""

from _oxwsgi_native import read as _read


class Input:
    """wsgi.input: the request body, never read past its end. Its type is mod_wsgi.Input, as
    under mod_wsgi."""

    __module__ = 'mod_wsgi'
    __slots__ = ('_ctx', '_buf')

    def __init__(self, ctx):
        self._ctx = ctx
        self._buf = b''

    def read(self, size=-1):
        if size is None or size < 0:
            data = self._buf + _read(self._ctx, -1)
            self._buf = b''
            return data
        if len(self._buf) >= size:
            data, self._buf = self._buf[:size], self._buf[size:]
            return data
        data = self._buf
        self._buf = b''
        return data + _read(self._ctx, size - len(data))

    def readline(self, size=-1):
        if size is None:
            size = -1
        if size == 0:
            return b''
        while True:
            end = self._buf.find(b'\n') + 1
            if end == 0 and 0 <= size <= len(self._buf):
                end = size
            elif end and 0 <= size < end:
                end = size
            if end:
                line, self._buf = self._buf[:end], self._buf[end:]
                return line
            # partial=True: a line that has arrived is returned without waiting for more.
            more = _read(self._ctx, 8192, True)
            if not more:
                line, self._buf = self._buf, b''
                return line
            self._buf += more

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self):
        pass
