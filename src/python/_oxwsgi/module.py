"""The `mod_wsgi` module applications import (sys.modules['mod_wsgi'])."""

import sys
import types

from _oxwsgi_native import request_data
from _oxwsgi import events, metrics_api
from _oxwsgi.file_wrapper import FileWrapper


class RequestTimeout(BaseException):
    """mod_wsgi.RequestTimeout (mod_wsgi 6): raised in a request's thread when it exceeds its
    daemon group's request-timeout and interrupt-timeout is set. A BaseException, so that
    `except Exception:` does not swallow it; the request is answered 504."""


RequestTimeout.__module__ = 'mod_wsgi'


def drain_async_exception():
    """Does nothing: its call lets a RequestTimeout still pending on this thread fire."""


def thread_stack(ident):
    """The Python stack of thread `ident` as mod_wsgi 6 logs it before it raises RequestTimeout
    there, innermost call first, one line each; '' when that thread runs no Python code."""
    frame = sys._current_frames().get(ident)
    lines = []
    while frame is not None:
        code = frame.f_code
        where = 'file "%s", line %d, in %s' % (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
        if not lines:
            lines.append('Thread %d executing %s' % (ident, where))
        else:
            lines.append('called from %s%s' % (where, ',' if frame is not None else '.'))
    return '\n'.join(lines)


def install(process_group, application_group, version, threads_per_process, maximum_processes):
    """Makes the `mod_wsgi` module of this interpreter and puts it in sys.modules."""
    mod = types.ModuleType('mod_wsgi')
    mod.version = version
    mod.process_group = process_group
    mod.application_group = application_group
    mod.threads_per_process = threads_per_process
    mod.maximum_processes = maximum_processes
    mod.FileWrapper = FileWrapper
    mod.RequestTimeout = RequestTimeout
    mod.oxwsgi = True
    mod.event_callbacks = events.event_callbacks
    mod.active_requests = events.active_requests
    mod.signal_callbacks = events.signal_callbacks
    mod.subscribe_signals = events.subscribe_signals
    mod.subscribe_events = events.subscribe_events
    mod.subscribe_shutdown = events.subscribe_shutdown
    mod.process_metrics = metrics_api.process_metrics
    mod.request_metrics = metrics_api.request_metrics
    mod.start_recording_metrics = metrics_api.start_recording_metrics
    mod.server_metrics = metrics_api.server_metrics
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
    return mod
