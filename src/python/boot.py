"""oxwsgi's support code, executed once in every Python interpreter it creates.

The hot path (environ, start_response, the response loop) is native; what lives here is the
Python-facing surface whose speed does not matter much: the wsgi.input and log stream classes,
wsgi.file_wrapper, script loading, and the per-interpreter setup (the `mod_wsgi` module,
sys.stdout/sys.stderr, os.environ isolation).

Before this runs, the native side puts `_log(ctx, level, text)` and `_read(ctx, size)` into the
module's globals; `ctx` is a per-request capsule (None outside a request).
"""

import sys
import os
import _thread
import types

LOG_ERR = 3
LOG_INFO = 6


class _LineLog:
    """Writes each complete line to Apache's error log. A partial line waits in `_buf`, and in
    `_pending` so that it is logged at the end of the request if nothing completes it. The
    subclasses say what a line is (`_nl`) and how it becomes text (`_text`)."""

    _ctx = None

    def _add(self, data):
        *lines, self._buf = (self._buf + data).split(self._nl)
        for line in lines:
            _log(self._ctx, self._level, self._text(line))
        if self._buf:
            _pending.add(self)

    def flush(self):
        _pending.discard(self)
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
        import io
        raise io.UnsupportedOperation('Apache error log stream has no file descriptor')


class Input:
    """wsgi.input: the request body, never read past its end."""

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


class FileWrapper:
    """wsgi.file_wrapper. The server sends a real file with Apache's file buckets (sendfile);
    any other file-like object is read in blocks through iteration."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, 'close'):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


_load_lock = _thread.RLock()
_scripts = {}


_case_sensitive = True


def module_name(path):
    """mod_wsgi's name for a script's module. `_md5` avoids loading OpenSSL through hashlib.
    With WSGICaseSensitivity Off the path is lower-cased first (one module per file on a
    case-insensitive file system), as in mod_wsgi."""
    try:
        from _md5 import md5
    except ImportError:
        from hashlib import md5
    if not _case_sensitive:
        path = path.lower()
    return '_mod_wsgi_' + md5(path.encode('utf-8', 'surrogateescape')).hexdigest()


def load_script(path, mtime, reload, force=False):
    """The module for a WSGI script file, executed once and again when its mtime changes (or
    when `force`: its reload_required() asked for it)."""
    entry = _scripts.get(path)
    if entry is not None and not force and (not reload or entry[0] == mtime):
        return entry[1]
    with _load_lock:
        entry = _scripts.get(path)
        if entry is not None and not force and (not reload or entry[0] == mtime):
            return entry[1]
        name = module_name(path)
        module = types.ModuleType(name)
        module.__file__ = path
        # As an imported module has them (pickle, inspect, linecache and importlib use them).
        from importlib.machinery import SourceFileLoader
        from importlib.util import spec_from_file_location
        loader = SourceFileLoader(name, path)
        module.__loader__ = loader
        module.__spec__ = spec_from_file_location(name, path, loader=loader)
        module.__cached__ = module.__spec__.cached
        module.__mtime__ = mtime
        with open(path, 'rb') as f:
            source = f.read()
        code = compile(source, path, 'exec', dont_inherit=True)
        old = sys.modules.get(name)
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            if old is not None:
                sys.modules[name] = old
            else:
                sys.modules.pop(name, None)
            raise
        _scripts[path] = (mtime, module)
        return module


def format_exception(exc):
    import traceback
    return ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# Streams holding a partial line (wsgi.errors, and the binary end of sys.stdout/sys.stderr); the
# native side checks this set at the end of each request and calls flush_pending() only when it
# is not empty.
_pending = set()


class _LogRaw(_LineLog):
    """The binary end of sys.stdout/sys.stderr: each complete line goes to Apache's error log
    (a partial line when flushed; oxwsgi flushes both streams at the end of every request)."""

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


def _log_stream(name, level):
    """A real text stream (like mod_wsgi's: .buffer, reconfigure(), ...) over `_LogRaw`."""
    import io
    raw = _RawAdapter(_LogRaw(name, level))
    return io.TextIOWrapper(raw, encoding='utf-8', errors='replace', line_buffering=True, write_through=True)


def _raw_adapter():
    import io

    class RawAdapter(io.RawIOBase):
        def __init__(self, target):
            self._target = target
            self.name = target.name

        def writable(self):
            return True

        def write(self, b):
            return self._target.write(b)

        def flush(self):
            # Line buffering flushes after every newline; a partial line stays until the end
            # of the request (flush_pending).
            pass

        def fileno(self):
            return self._target.fileno()

    return RawAdapter


def _RawAdapter(target):
    return _raw_adapter()(target)


def flush_pending():
    """End of a request: what print() left without a newline reaches the log too."""
    for raw in list(_pending):
        raw.flush()


_event_callbacks = []


def subscribe_events(callback):
    """mod_wsgi.subscribe_events: callback(name, **kwargs) for process events."""
    _event_callbacks.append(callback)


def subscribe_shutdown(callback):
    """mod_wsgi.subscribe_shutdown: callback(name, **kwargs) when the process is stopping."""
    def on_event(name, **kwargs):
        if name == 'process_stopping':
            callback(name, **kwargs)
    _event_callbacks.append(on_event)


def _publish(name, _callbacks=_event_callbacks, **kwargs):
    for callback in list(_callbacks):
        try:
            callback(name, **kwargs)
        except Exception:
            import traceback
            traceback.print_exc()


active_requests = {}


def request_started(environ, application, start_response, application_start):
    """A request begins (there are subscribers): publishes 'request_started'; returns the
    request's data dict (mod_wsgi.request_data()) and the start_response to give the
    application, which publishes 'response_started'."""
    data = {}
    request_id = environ.get('mod_wsgi.request_id')
    if request_id is not None:
        active_requests[request_id] = data
    start = environ.get('mod_wsgi.request_start')
    _publish('request_started', request_id=request_id, request_data=data,
             request_start=int(start) / 1e6 if start else None,
             application_object=application, callable_object=environ.get('mod_wsgi.callable_object'),
             request_environ=environ, application_start=application_start)

    def start_response_published(status, response_headers, exc_info=None):
        _publish('response_started', request_id=request_id, request_data=data,
                 response_status=status, response_headers=response_headers, exception_info=exc_info)
        return start_response(status, response_headers, exc_info)

    return data, start_response_published


def request_finished(environ, data, application_start, stats, exception):
    """The request is over: 'request_exception' if the application raised, then
    'request_finished' with mod_wsgi's figures (stats: input/output counts and times, CPU
    time, GIL wait, status; measured by oxwsgi)."""
    import time
    request_id = environ.get('mod_wsgi.request_id')
    if exception is not None:
        _publish('request_exception', request_id=request_id, request_data=data,
                 exception_info=(type(exception), exception, exception.__traceback__))
    finish = time.time()
    stamps = {}
    for key in ('request_start', 'queue_start', 'daemon_start'):
        value = environ.get('mod_wsgi.' + key)
        if value:
            stamps[key] = int(value) / 1e6
    if not _daemon:
        # The Apache child that took the request (a daemon does not know which one did).
        stamps['server_pid'] = os.getpid()
    _publish('request_finished', request_id=request_id, request_data=data,
             thread_id=environ.get('mod_wsgi.thread_id'),
             application_finish=finish, application_time=finish - application_start,
             **stamps, **stats)
    active_requests.pop(request_id, None)


_signal_callbacks = []
_daemon = False


def subscribe_signals(callback):
    """mod_wsgi.subscribe_signals (mod_wsgi 6): callback('process_signal', signame=..., signum=...)
    when this daemon process gets SIGHUP or SIGUSR2. Inert in embedded mode (signals belong to
    Apache there): logged, and the callback is returned unregistered. Usable as a decorator."""
    if _daemon:
        _signal_callbacks.append(callback)
    else:
        import traceback
        sys.stderr.write('mod_wsgi (pid=%d): mod_wsgi.subscribe_signals() has no effect in embedded mode; '
                         'the callback is not registered.\n' % os.getpid())
        traceback.print_stack(sys._getframe(1), file=sys.stderr)
        sys.stderr.flush()
    return callback


def process_signal(signame, signum):
    _publish('process_signal', _signal_callbacks, signame=signame, signum=signum)


def process_stopping(reason):
    """Called once when the process stops: every subscriber hears 'process_stopping'."""
    _publish('process_stopping', shutdown_reason=reason)


def _memory():
    """(resident, peak resident) bytes of this process."""
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with open('/proc/self/statm') as f:
            rss = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        rss = 0
    return rss, peak


def process_metrics():
    """mod_wsgi.process_metrics(): this process since it started (from the shared metrics)."""
    import resource, time
    stats = _process_stats()
    if stats is None or _telemetry:
        return None
    started_us, requests, busy_us, threads, busy = stats
    now = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss, peak = _memory()
    return {
        'pid': os.getpid(),
        'restart_time': started_us / 1e6,
        'current_time': now,
        'running_time': int(now - started_us / 1e6),
        'request_count': requests,
        'request_busy_time': busy_us / 1e6,
        'request_threads': threads,
        'active_requests': busy,
        'cpu_user_time': usage.ru_utime,
        'cpu_system_time': usage.ru_stime,
        'cpu_time': usage.ru_utime + usage.ru_stime,
        'memory_rss': rss,
        'memory_max_rss': peak,
        'threads': [],
    }


_recording = None


def start_recording_metrics():
    """mod_wsgi.start_recording_metrics(): the first request_metrics() interval starts now."""
    global _recording
    if _recording is None:
        _recording = _sample()


def _sample():
    import resource, time
    stats = _process_stats() or (0, 0, 0, 0, 0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.time(), stats, usage.ru_utime, usage.ru_stime


def request_metrics():
    """mod_wsgi.request_metrics(): this process over the interval since the previous call (or
    since start_recording_metrics()); None until that has been called."""
    global _recording
    if _recording is None or _telemetry:
        return None
    then, before, user0, system0 = _recording
    now, after, user1, system1 = _recording = _sample()
    period = max(now - then, 1e-9)
    count = after[1] - before[1]
    busy = (after[2] - before[2]) / 1e6
    threads = after[3]
    rss, peak = _memory()
    user, system = (user1 - user0) / period, (system1 - system0) / period
    return {
        'pid': os.getpid(),
        'start_time': then,
        'stop_time': now,
        'sample_period': period,
        'request_count': count,
        'request_throughput': count / period,
        'request_threads_maximum': threads,
        'request_threads_active': after[4],
        'capacity_utilization': busy / (period * threads) if threads else 0.0,
        'request_busy_time': busy,
        'cpu_user_utilization': user,
        'cpu_system_utilization': system,
        'cpu_utilization': user + system,
        'memory_rss': rss,
        'memory_max_rss': peak,
    }


def server_metrics():
    """mod_wsgi.server_metrics(): Apache's scoreboard (every process and worker slot), where
    WSGIServerMetrics On (embedded) or server-metrics=On (daemon) allows it; else None."""
    raw = _server_metrics_json()
    if raw is None:
        return None
    import json
    return json.loads(raw)


class RequestTimeout(BaseException):
    """mod_wsgi.RequestTimeout (mod_wsgi 6): raised in a request's thread when it exceeds its
    daemon group's request-timeout and interrupt-timeout is set. A BaseException, so that
    `except Exception:` does not swallow it; the request is answered 504."""


RequestTimeout.__module__ = 'mod_wsgi'


def _gc_reporter(application_group):
    """A gc.callbacks hook (WSGITelemetryService): each collection pass, with the collector's
    state after it, goes to the telemetry reporter (mod_wsgi 6's GC records)."""
    import gc, time
    started = [0.0, 0.0]

    def callback(phase, info):
        if phase == 'start':
            started[0], started[1] = time.time(), time.perf_counter()
            return
        duration = time.perf_counter() - started[1]
        stats = gc.get_stats()
        values = ((started[0], duration, info['generation'], info['collected'], info['uncollectable'])
                  + gc.get_count() + gc.get_threshold()
                  + tuple(s['collections'] for s in stats) + tuple(s['collected'] for s in stats)
                  + tuple(s['uncollectable'] for s in stats)
                  + (int(gc.isenabled()), gc.get_freeze_count()))
        _telemetry_gc(application_group, values)

    return callback


def _drain_async_exception():
    """Does nothing: its call lets a RequestTimeout still pending on this thread fire."""


class _Restricted(object):
    """sys.stdin / sys.stdout under WSGIRestrictStdin / WSGIRestrictStdout On: any use raises,
    as in mod_wsgi (so code that prints or reads the terminal is found)."""

    def __init__(self, name):
        object.__setattr__(self, '_name', name)

    def __getattribute__(self, attr):
        raise IOError('%s access restricted by mod_wsgi' % object.__getattribute__(self, '_name'))


def setup(process_group, application_group, version, environ_snapshot, restrict_signal,
          restrict_stdin, restrict_stdout, threads_per_process, maximum_processes, case_sensitive):
    """Per-interpreter setup, called once right after this module is executed."""
    global _case_sensitive, _daemon
    _case_sensitive = case_sensitive
    _daemon = bool(process_group)
    sys.stdout = _Restricted('sys.stdout') if restrict_stdout else _log_stream('<stdout>', LOG_ERR)
    sys.stderr = _log_stream('<stderr>', LOG_ERR)
    if restrict_stdin:
        sys.stdin = _Restricted('sys.stdin')
    sys.argv = ['mod_wsgi']

    mod = types.ModuleType('mod_wsgi')
    mod.version = version
    mod.process_group = process_group
    mod.application_group = application_group
    mod.threads_per_process = threads_per_process
    mod.maximum_processes = maximum_processes
    mod.FileWrapper = FileWrapper
    mod.RequestTimeout = RequestTimeout
    mod.oxwsgi = True
    mod.event_callbacks = _event_callbacks
    mod.active_requests = active_requests
    mod.signal_callbacks = _signal_callbacks
    mod.subscribe_signals = subscribe_signals
    mod.subscribe_events = subscribe_events
    mod.subscribe_shutdown = subscribe_shutdown
    mod.process_metrics = process_metrics
    mod.request_metrics = request_metrics
    mod.start_recording_metrics = start_recording_metrics
    mod.server_metrics = server_metrics
    mod.request_data = request_data
    # As under mod_wsgi: where the `mod_wsgi` package from pip is on sys.path, its subpackages
    # (mod_wsgi.express, mod_wsgi.server, which mod_wsgi-express's handler script imports) are
    # importable as `mod_wsgi.*` beside this module.
    try:
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec('mod_wsgi')
        if spec is not None and spec.submodule_search_locations:
            mod.__path__ = list(spec.submodule_search_locations)
    except Exception:
        pass
    sys.modules['mod_wsgi'] = mod
    if _telemetry:
        import gc
        gc.callbacks.append(_gc_reporter(application_group))

    if environ_snapshot is not None:
        isolate_environ(environ_snapshot)
    if restrict_signal:
        restrict_signals(application_group)


def newrelic_initialize(config_file, environment):
    """WSGINewRelicConfigFile (mod_wsgi 4.x): this interpreter starts the New Relic agent."""
    import traceback
    try:
        import newrelic.agent
    except Exception:
        sys.stderr.write("mod_wsgi (pid=%d): Unable to import 'newrelic.agent' module.\n" % os.getpid())
        traceback.print_exc()
        return
    mod = sys.modules['mod_wsgi']
    sys.stderr.write("mod_wsgi (pid=%d, process=%r, application=%r): Imported 'newrelic.agent'.\n"
                     % (os.getpid(), mod.process_group, mod.application_group))
    try:
        newrelic.agent.initialize(config_file, environment)
    except Exception:
        sys.stderr.write("mod_wsgi (pid=%d): Unable to initialise New Relic agent with config '%s'.\n"
                         % (os.getpid(), config_file))
        traceback.print_exc()


def isolate_environ(snapshot):
    """Give this interpreter its own process environment, starting from `snapshot` (the process
    environment as it was before any application ran).

    In CPython every interpreter builds os.environ from the C `environ` when it starts, and
    `os.environ[k] = v`, `setdefault`, `del`, `os.putenv` and `os.unsetenv` write through to it:
    that is how one application's `os.environ.setdefault('DJANGO_SETTINGS_MODULE', ...)` reaches
    the next interpreter created. Here the writes go to a per-interpreter emulation of the C
    environment instead (`os.putenv`/`os.unsetenv` are rebound; os.environ looks them up at call
    time), the real one is never written, and os.environ is refilled from the snapshot.

    Child processes see this interpreter's environment, as they would see the C environment of
    a process of its own: subprocess (and so os.popen, asyncio's subprocesses, ...), os.system,
    and os.exec*/os.spawn* without an explicit environment. Not covered: code that execs or
    spawns from C without passing an environment, and os.fork() children that exec from C;
    they inherit the real process environment (the snapshot plus anything C code set).
    """
    fsencode = os.fsencode
    # This interpreter's C environment: bytes -> bytes, like os.environ._data on POSIX.
    cenv = {}
    for key, value in snapshot.items():
        cenv[fsencode(key)] = fsencode(value)

    def check_key(key):
        key = fsencode(key)
        if not key or b'=' in key:
            raise ValueError('illegal environment variable name')
        if b'\0' in key:
            raise ValueError('embedded null byte')
        return key

    def putenv(key, value):
        key = check_key(key)
        value = fsencode(value)
        if b'\0' in value:
            raise ValueError('embedded null byte')
        cenv[key] = value

    def unsetenv(key):
        cenv.pop(check_key(key), None)

    putenv.__doc__ = 'Change or add an environment variable (of this application group only).'
    unsetenv.__doc__ = 'Delete an environment variable (of this application group only).'
    os.putenv = putenv
    os.unsetenv = unsetenv
    data = os.environ._data
    data.clear()
    data.update(cenv)

    def child_environ():
        return dict(cenv)

    global process_environ
    process_environ = child_environ

    # subprocess execs through _posixsubprocess.fork_exec; with env=None the child would inherit
    # the real C environment. Hand it this group's instead. (Patching this small C module rather
    # than subprocess.Popen keeps subprocess, and what it imports, out of memory until an
    # application imports it.)
    import _posixsubprocess
    real_fork_exec = _posixsubprocess.fork_exec

    def fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, *rest):
        if env is None:
            env = [key + b'=' + value for key, value in cenv.items()]
        return real_fork_exec(args, executable_list, close_fds, pass_fds, cwd, env, *rest)

    fork_exec.__wrapped__ = real_fork_exec
    _posixsubprocess.fork_exec = fork_exec

    def system(command):
        """Execute the command in a subshell (with this application group's environment)."""
        import subprocess
        code = subprocess.call(command, shell=True)
        # os.system returns a wait status: the exit code in the high byte, or the signal.
        return -code if code < 0 else (code & 0xff) << 8

    real_execv = os.execv

    def execv(path, argv):
        """Execute a new program, replacing the current process (with this group's environment)."""
        os.execve(path, argv, child_environ())

    execv.__wrapped__ = real_execv
    system.__wrapped__ = os.system
    os.system = system
    os.execv = execv


def process_environ():
    """The environment a child process of this interpreter gets (set by isolate_environ)."""
    return dict(os.environ)


def restrict_signals(application_group):
    import signal
    real_signal = signal.signal

    def guarded(signum, handler):
        caller = sys._getframe(1)
        sys.stderr.write(
            "mod_wsgi (pid=%d): Callback registration for signal %s ignored: application group %r, "
            "called from %s line %d. Signals belong to Apache in embedded mode (WSGIRestrictSignal On).\n"
            % (os.getpid(), signum, application_group, caller.f_code.co_filename, caller.f_lineno))
        sys.stderr.flush()
        return signal.getsignal(signum)

    guarded.__wrapped__ = real_signal
    signal.signal = guarded
