"""What every test here imports first: the `_oxwsgi` package from src/python, with a fake of
the native module `_oxwsgi_native` that Apache's side provides (src/python/native.rs,
metrics_api.rs, telemetry_gc.rs; its names are listed in _oxwsgi/__init__.py)."""

import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, 'src', 'python')


class Body:
    """A request body for the fake `read`: `chunks` arrive one after another; a read with
    `partial` returns what has arrived (at most the rest of the current chunk), any other read
    waits for `size` bytes (fewer only at the end)."""

    def __init__(self, *chunks):
        self.chunks = [bytes(c) for c in chunks if c]
        self.calls = []

    def read(self, size, partial):
        self.calls.append((size, partial))
        if size < 0:
            data, self.chunks = b''.join(self.chunks), []
            return data
        out = b''
        while self.chunks and len(out) < size:
            take = self.chunks[0][:size - len(out)]
            out += take
            rest = self.chunks[0][len(take):]
            if rest:
                self.chunks[0] = rest
            else:
                self.chunks.pop(0)
            if partial:
                break
        return out


class FakeNative(types.ModuleType):
    """The fake `_oxwsgi_native`: records what is logged and reported."""

    def __init__(self):
        super().__init__('_oxwsgi_native')
        self.lines = []          # (ctx, level, text) of each log() call
        self.gc_passes = []      # (application_group, values) of each telemetry_gc() call
        self.stats = None        # what process_stats() returns
        self.scoreboard = None   # what server_metrics_json() returns
        self.data = None         # what request_data() returns (None: no request)
        self.telemetry = False
        self.recorded_io = None  # what recorded() returns next (start_recording() sets it)

    def log(self, ctx, level, text):
        self.lines.append((ctx, level, text))

    def read(self, ctx, size, partial=False):
        if not isinstance(ctx, Body):
            raise OSError('wsgi.input used outside its request')
        return ctx.read(size, partial)

    def process_stats(self):
        return self.stats

    def server_metrics_json(self):
        return self.scoreboard

    def start_recording(self):
        if self.recorded_io is None:
            self.recorded_io = (0, 0, 0, 0, 0, ((0, None, None, (0,) * 65),) * 3)

    def recorded(self):
        taken, self.recorded_io = self.recorded_io, None
        if taken is not None:
            self.start_recording()
        return taken

    def request_data(self):
        if self.data is None:
            raise RuntimeError('no active request for thread')
        return self.data

    def telemetry_gc(self, application_group, values):
        self.gc_passes.append((application_group, values))

    def texts(self):
        return [text for _ctx, _level, text in self.lines]


if '_oxwsgi_native' not in sys.modules:
    sys.modules['_oxwsgi_native'] = FakeNative()
if SRC not in sys.path:
    sys.path.insert(0, SRC)
native = sys.modules['_oxwsgi_native']

import _oxwsgi  # noqa: E402  (after the fake is in place)


def run_isolated(code):
    """Runs `code` in a fresh Python (with the package and the fake, as here), for what changes
    the whole process (sys.stdout, os.environ, ...); returns what it writes to fd 1. (The fresh
    Python has not imported subprocess, as in Apache: environ isolation patches what subprocess
    binds when it is first imported.)"""
    import subprocess
    prelude = 'import sys\nsys.path.insert(0, %r)\nimport support\nfrom support import native\n' % (
        os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, '-B', '-c', prelude + code], capture_output=True)
    if done.returncode != 0:
        raise AssertionError('isolated test failed (exit %d):\n%s\n%s' % (
            done.returncode, done.stdout.decode(errors='replace'), done.stderr.decode(errors='replace')))
    return done.stdout.decode()
