"""Log streams: wsgi.errors, and sys.stdout/sys.stderr (or their restricted stand-ins), each
an io.TextIOWrapper over a `Log` as in mod_wsgi.

Each complete line goes to Apache's error log through the native `log(ctx, level, text)`;
`ctx` is the request's capsule (None outside a request). A partial line waits in its `Log` and
in `pending`, which the native side checks at the end of every request (it calls
`flush_pending()` only when the set is not empty), so that nothing written is lost.
"""

import io
import sys

from _oxwsgi_native import log as _log

LOG_ERR = 3

# Streams holding a partial line (wsgi.errors, and the binary end of sys.stdout/sys.stderr).
pending = set()


def flush_pending():
    """End of a request: what print() or wsgi.errors left without a newline reaches the log."""
    for raw in list(pending):
        raw._drain()


class Log(io.RawIOBase):
    """The binary stream under wsgi.errors, sys.stdout and sys.stderr (their `.buffer`, which
    takes bytes, bytearray and memoryview): each complete line goes to Apache's error log,
    attributed to the request `ctx` (None: the request this thread runs, or the server). A
    partial line waits, in `pending`, until a newline completes it or the request ends; flush()
    and close() leave it there (the text stream above flushes after every line it writes)."""

    __module__ = 'mod_wsgi'
    __slots__ = ('_ctx', '_level', '_buf', 'name')

    def __init__(self, ctx=None, level=LOG_ERR, name='<wsgi.errors>'):
        self._ctx = ctx
        self._level = level
        self._buf = b''
        self.name = name

    def writable(self):
        return True

    def write(self, b):
        data = bytes(b)
        *lines, self._buf = (self._buf + data).split(b'\n')
        for line in lines:
            _log(self._ctx, self._level, line.decode('utf-8', 'replace'))
        if self._buf:
            pending.add(self)
        return len(data)

    def flush(self):
        pass

    def _drain(self):
        pending.discard(self)
        if self._buf:
            buf, self._buf = self._buf, b''
            _log(self._ctx, self._level, buf.decode('utf-8', 'replace'))

    # (No close(): one made for every request would cost its wrapper a Python call when it
    # goes. A partial line left in a closed stream is still logged by flush_pending.)

    def _dealloc_warn(self, source):
        """Called by the text stream above when it is collected unclosed (as FileIO's warns
        of an unclosed file): nothing to warn of here. Without it, that call made and cleared
        an AttributeError for every request's wsgi.errors (0.2 of its 0.95 µs)."""

    def fileno(self):
        raise OSError('Apache error log stream has no file descriptor')


_TextIOWrapper = io.TextIOWrapper


def LogStream(ctx=None, level=LOG_ERR, name='<wsgi.errors>'):
    """wsgi.errors (and sys.stdout, sys.stderr): an io.TextIOWrapper over a `Log`, as mod_wsgi
    makes it (UTF-8, errors='replace', line buffered, written through)."""
    return _TextIOWrapper(Log(ctx, level, name), 'utf-8', 'replace', None, True, True)


# wsgi.errors streams of ended requests that nothing referred to any more (the native side
# checks before it calls give_back), kept for this interpreter's next requests: making one
# costs about 1 µs (the wrapper, its encoder, and closing it when it goes), and most requests
# never write to it. No application can tell: only a stream nothing refers to is reused.
_idle = []


def errors_stream(ctx):
    """wsgi.errors of the request `ctx`: a stream an ended request gave back, or a new one."""
    if _idle:
        stream = _idle.pop()
        stream.buffer._ctx = ctx
        return stream
    return LogStream(ctx)


def give_back(stream):
    """The request that had `stream` as wsgi.errors has ended and nothing else refers to it:
    it is kept for a next request, unless its application closed, detached or reconfigured it
    (or left a partial line, which flush_pending has logged by then)."""
    try:
        raw = stream.buffer
    except ValueError:
        return
    if (type(raw) is Log and not raw.closed and not raw._buf and stream.encoding == 'utf-8'
            and stream.errors == 'replace' and stream.line_buffering and stream.write_through):
        raw._ctx = None
        _idle.append(stream)


def log_stream(name, level=LOG_ERR):
    """sys.stdout / sys.stderr: a `LogStream` attributed to the request the thread runs."""
    return LogStream(None, level, name)


class Restricted(object):
    """sys.stdin / sys.stdout under WSGIRestrictStdin / WSGIRestrictStdout On: any use raises,
    as in mod_wsgi (so code that prints or reads the terminal is found); its type is
    mod_wsgi.Restricted, as there."""

    __module__ = 'mod_wsgi'

    def __init__(self, name):
        object.__setattr__(self, '_name', name)

    def __getattribute__(self, attr):
        raise IOError('%s access restricted by mod_wsgi' % object.__getattribute__(self, '_name'))


def install_stdio(restrict_stdin, restrict_stdout):
    """sys.stdout and sys.stderr write to Apache's error log (or raise, where restricted);
    sys.stdin raises where restricted."""
    sys.stdout = Restricted('sys.stdout') if restrict_stdout else log_stream('<stdout>')
    sys.stderr = log_stream('<stderr>')
    if restrict_stdin:
        sys.stdin = Restricted('sys.stdin')
