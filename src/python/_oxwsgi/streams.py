"""Log streams: wsgi.errors, and sys.stdout/sys.stderr (or their restricted stand-ins).

Each complete line goes to Apache's error log through the native `log(ctx, level, text)`;
`ctx` is the request's capsule (None outside a request). A partial line waits in its stream and
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
    """End of a request: what print() left without a newline reaches the log too."""
    for raw in list(pending):
        raw.flush()


class _LineLog:
    """Writes each complete line to Apache's error log. A partial line waits in `_buf`, and in
    `pending` so that it is logged at the end of the request if nothing completes it. The
    subclasses say what a line is (`_nl`) and how it becomes text (`_text`)."""

    __module__ = '_oxwsgi'
    _ctx = None

    def _add(self, data):
        *lines, self._buf = (self._buf + data).split(self._nl)
        for line in lines:
            _log(self._ctx, self._level, self._text(line))
        if self._buf:
            pending.add(self)

    def flush(self):
        pending.discard(self)
        if self._buf:
            buf, self._buf = self._buf, self._buf[:0]
            _log(self._ctx, self._level, self._text(buf))

    def close(self):
        self.flush()

    def isatty(self):
        return False

    def readable(self):
        return False

    def seekable(self):
        return False

    def writable(self):
        return True


class LogStream(_LineLog):
    """wsgi.errors: a text stream that writes each complete line to Apache's error log,
    attributed to the request; a partial line is logged at the end of the request."""

    __module__ = '_oxwsgi'
    encoding = 'utf-8'
    errors = 'backslashreplace'
    newlines = None
    line_buffering = True
    _nl = '\n'

    def __init__(self, ctx=None, level=LOG_ERR, name='<wsgi.errors>'):
        self._ctx = ctx
        self._level = level
        self._buf = ''
        self.name = name

    @staticmethod
    def _text(line):
        return line

    @property
    def closed(self):
        return False

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        self._add(s)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def fileno(self):
        raise io.UnsupportedOperation('Apache error log stream has no file descriptor')


class _LogRaw(_LineLog):
    """The binary end of sys.stdout/sys.stderr: each complete line goes to Apache's error log
    (a partial line when flushed; oxwsgi flushes both streams at the end of every request)."""

    __module__ = '_oxwsgi'
    _nl = b'\n'
    closed = False

    def __init__(self, name, level):
        self.name = name
        self._level = level
        self._buf = b''

    @staticmethod
    def _text(line):
        return line.decode('utf-8', 'replace')

    def write(self, b):
        self._add(bytes(b))
        return len(b)

    def fileno(self):
        raise OSError('Apache error log stream has no file descriptor')


class RawAdapter(io.RawIOBase):
    """`_LogRaw` as the raw stream under an io.TextIOWrapper."""

    __module__ = '_oxwsgi'

    def __init__(self, target):
        self._target = target
        self.name = target.name

    def writable(self):
        return True

    def write(self, b):
        return self._target.write(b)

    def flush(self):
        # Line buffering flushes after every newline; a partial line stays until the end of
        # the request (flush_pending).
        pass

    def fileno(self):
        return self._target.fileno()


def log_stream(name, level=LOG_ERR):
    """A real text stream (like mod_wsgi's: .buffer, reconfigure(), ...) over `_LogRaw`."""
    raw = RawAdapter(_LogRaw(name, level))
    return io.TextIOWrapper(raw, encoding='utf-8', errors='replace', line_buffering=True, write_through=True)


class _Restricted(object):
    """sys.stdin / sys.stdout under WSGIRestrictStdin / WSGIRestrictStdout On: any use raises,
    as in mod_wsgi (so code that prints or reads the terminal is found)."""

    __module__ = '_oxwsgi'

    def __init__(self, name):
        object.__setattr__(self, '_name', name)

    def __getattribute__(self, attr):
        raise IOError('%s access restricted by mod_wsgi' % object.__getattribute__(self, '_name'))


def install_stdio(restrict_stdin, restrict_stdout):
    """sys.stdout and sys.stderr write to Apache's error log (or raise, where restricted);
    sys.stdin raises where restricted."""
    sys.stdout = _Restricted('sys.stdout') if restrict_stdout else log_stream('<stdout>')
    sys.stderr = log_stream('<stderr>')
    if restrict_stdin:
        sys.stdin = _Restricted('sys.stdin')
