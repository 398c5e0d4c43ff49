"""oxwsgi's Python side, executed once in every Python interpreter it creates.

The hot path (environ, start_response, the response loop) is native; this package is the
Python-facing surface whose speed does not matter much. One concern per module:

- `streams`: wsgi.errors and sys.stdout/sys.stderr, line by line into Apache's error log
- `wsgi_input`: wsgi.input;  `file_wrapper`: wsgi.file_wrapper
- `scripts`: loading WSGI script files (and reloading them when they change)
- `events`: mod_wsgi's event bus (subscribe_events, subscribe_shutdown, subscribe_signals)
- `metrics_api`: mod_wsgi.process_metrics(), request_metrics(), server_metrics()
- `gc_telemetry`: WSGITelemetryService's garbage-collector records
- `environ_isolation`: each interpreter's own os.environ
- `signals`: WSGIRestrictSignal
- `newrelic_agent`: WSGINewRelicConfigFile
- `module`: the `mod_wsgi` module applications import

What the native side provides is the module `_oxwsgi_native` (src/python/native.rs and its
neighbours), put in sys.modules before this package runs:

- `log(ctx, level, text)`: one line to Apache's error log (attributed to the request `ctx`, a
  per-request capsule, or to the request this thread runs, or to the server)
- `read(ctx, size, partial=False)`: request body bytes
- `process_stats()`: (start_us, requests, busy_us, threads, busy) of this process, or None
- `server_metrics_json()`: Apache's scoreboard as JSON, or None
- `start_recording()`, `recorded()`: every request's GIL waits, wsgi.input reads and response
  writes measured from now; what was measured since the last `recorded()` call (see
  src/python/request_stats.rs `take_recorded`), or None before `start_recording()`
- `request_data()`: the dict of the request this thread runs (mod_wsgi.request_data)
- `telemetry_gc(application_group, values)`: one garbage-collector pass for telemetry
- `telemetry`: whether WSGITelemetryService is set

In Apache each file is executed from the module's own copy (src/python/bootstrap.rs), in an
order where a module comes after those it imports and this one comes last. Outside Apache the
package imports normally (tests/python, with a fake `_oxwsgi_native`).

The native side calls `setup(...)` once, with keyword arguments, and keeps what it returns.
"""

import sys
import types

from _oxwsgi import (environ_isolation, events, file_wrapper, gc_telemetry, metrics_api, module,
                     newrelic_agent, scripts, signals, streams, wsgi_input)
from _oxwsgi_native import telemetry as _telemetry

# The classes applications meet, named `mod_wsgi.<name>` as under mod_wsgi (wsgi.errors is an
# io.TextIOWrapper over a mod_wsgi.Log; LogStream makes one).
Input = wsgi_input.Input
LogStream = streams.LogStream
FileWrapper = file_wrapper.FileWrapper


def setup(*, process_group, application_group, version, threads_per_process, maximum_processes,
          case_sensitive, restrict_stdin, restrict_stdout, restrict_signal, environ=None,
          newrelic_config_file=None, newrelic_environment=None):
    """Sets this interpreter up and returns what the native side uses of it.

    Arguments: `process_group` ('' in embedded mode, else the daemon group), `application_group`
    (this interpreter's), `version` (mod_wsgi.version), `threads_per_process` and
    `maximum_processes` (the mod_wsgi module's), `case_sensitive` (WSGICaseSensitivity),
    `restrict_stdin`, `restrict_stdout`, `restrict_signal` (WSGIRestrict*), `environ` (the
    process environment before any application ran: this interpreter's os.environ starts from it
    and is its own; None leaves os.environ alone), `newrelic_config_file` and
    `newrelic_environment` (WSGINewRelicConfigFile: None for no agent).

    The namespace returned has exactly these names:
      Input, errors_stream, FileWrapper: what makes wsgi.input and wsgi.errors (called with
        the request's capsule) and wsgi.file_wrapper; give_back(stream): an ended request's
        wsgi.errors that nothing refers to, for a next request;
      load_script(path, mtime, reload, force), format_exception(exc),
        exception_header(exc, script);
      pending, flush_pending: the set of streams holding a partial line, and what logs them;
      process_stopping(reason), process_signal(signame, signum): process events;
      event_callbacks: the list of subscribers (request events are published only when it is
        not empty), request_started(environ, application, start_response, application_start)
        and request_finished(environ, data, application_start, stats, exception);
      RequestTimeout, drain_async_exception, thread_stack: interrupt-timeout's exception, a
        function that does nothing (calling it lets a pending one fire), and the stack of the
        thread it is raised in, as logged first.
    """
    scripts.configure(case_sensitive, process_group, application_group)
    events.configure(bool(process_group))
    streams.install_stdio(restrict_stdin, restrict_stdout)
    sys.argv = ['mod_wsgi']
    module.install(process_group, application_group, version, threads_per_process, maximum_processes)
    if _telemetry:
        gc_telemetry.install(application_group)
    if environ is not None:
        environ_isolation.isolate_environ(environ)
    if restrict_signal:
        signals.restrict_signals(application_group)
    if newrelic_config_file is not None:
        newrelic_agent.initialize(newrelic_config_file, newrelic_environment)
    return types.SimpleNamespace(
        Input=Input,
        errors_stream=streams.errors_stream,
        give_back=streams.give_back,
        FileWrapper=FileWrapper,
        load_script=scripts.load_script,
        format_exception=scripts.format_exception,
        exception_header=scripts.exception_header,
        pending=streams.pending,
        flush_pending=streams.flush_pending,
        process_stopping=events.process_stopping,
        process_signal=events.process_signal,
        event_callbacks=events.event_callbacks,
        request_started=events.request_started,
        request_finished=events.request_finished,
        RequestTimeout=module.RequestTimeout,
        drain_async_exception=module.drain_async_exception,
        thread_stack=module.thread_stack,
    )
