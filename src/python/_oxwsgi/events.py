"""mod_wsgi's event bus: subscribe_events/subscribe_shutdown/subscribe_signals, and the events
the native side publishes through it (the request events only when there are subscribers)."""

import os
import sys

# What mod_wsgi.subscribe_events() and subscribe_shutdown() add to (mod_wsgi.event_callbacks);
# the native side publishes the request events only when it is not empty.
event_callbacks = []
# mod_wsgi.subscribe_signals() (mod_wsgi.signal_callbacks).
signal_callbacks = []
# request id -> the request's data dict, while it runs (mod_wsgi.active_requests).
active_requests = {}
_daemon = False


def configure(daemon):
    """Whether this is a daemon process (signals are its own; no Apache child's pid to report)."""
    global _daemon
    _daemon = daemon


def subscribe_events(callback):
    """mod_wsgi.subscribe_events: callback(name, **kwargs) for process events."""
    event_callbacks.append(callback)


def subscribe_shutdown(callback):
    """mod_wsgi.subscribe_shutdown: callback(name, **kwargs) when the process is stopping."""
    def on_event(name, **kwargs):
        if name == 'process_stopping':
            callback(name, **kwargs)
    event_callbacks.append(on_event)


def _publish(name, _callbacks=event_callbacks, **kwargs):
    for callback in list(_callbacks):
        try:
            callback(name, **kwargs)
        except Exception:
            import traceback
            traceback.print_exc()


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


def subscribe_signals(callback):
    """mod_wsgi.subscribe_signals (mod_wsgi 6): callback('process_signal', signame=..., signum=...)
    when this daemon process gets SIGHUP or SIGUSR2. Inert in embedded mode (signals belong to
    Apache there): logged, and the callback is returned unregistered. Usable as a decorator."""
    if _daemon:
        signal_callbacks.append(callback)
    else:
        import traceback
        sys.stderr.write('mod_wsgi (pid=%d): mod_wsgi.subscribe_signals() has no effect in embedded mode; '
                         'the callback is not registered.\n' % os.getpid())
        traceback.print_stack(sys._getframe(1), file=sys.stderr)
        sys.stderr.flush()
    return callback


def process_signal(signame, signum):
    """A daemon process got SIGHUP or SIGUSR2: every subscribe_signals() callback hears it."""
    _publish('process_signal', signal_callbacks, signame=signame, signum=signum)


def process_stopping(reason):
    """Called once when the process stops: every subscriber hears 'process_stopping'."""
    _publish('process_stopping', shutdown_reason=reason)
