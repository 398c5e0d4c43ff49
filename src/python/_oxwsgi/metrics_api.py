"""mod_wsgi.process_metrics(), request_metrics(), start_recording_metrics() and
server_metrics(): dictionaries built from the native counters (`process_stats()`, this
process's row of the shared metrics) and Apache's scoreboard (`server_metrics_json()`).
Under WSGITelemetryService (`telemetry`) process_metrics() and request_metrics() give None, as
in mod_wsgi 6."""

import os

from _oxwsgi_native import process_stats as _process_stats
from _oxwsgi_native import recorded as _recorded
from _oxwsgi_native import server_metrics_json as _server_metrics_json
from _oxwsgi_native import start_recording as _start_recording
from _oxwsgi_native import telemetry as _telemetry


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
        _start_recording()


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
    metrics = {
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
    metrics.update(_io_metrics(_recorded(), count))
    return metrics


_PHASES = ('gil_wait_time', 'input_read_time', 'output_write_time')


def _io_metrics(recorded, count):
    """mod_wsgi 6's I/O and GIL keys of request_metrics(), from the native figures: each phase's
    mean per request (seconds), exact min and max (microseconds, None without requests) and
    its 65 buckets, and the interval's counts."""
    if recorded is None:
        recorded = (0, 0, 0, 0, 0, ((0, None, None, (0,) * 65),) * 3)
    gil_count, in_bytes, in_reads, out_bytes, out_writes, phases = recorded
    out = {
        'gil_wait_count': gil_count,
        'input_bytes': in_bytes,
        'input_reads': in_reads,
        'output_bytes': out_bytes,
        'output_writes': out_writes,
    }
    for name, (total_us, min_us, max_us, buckets) in zip(_PHASES, phases):
        out[name] = total_us / 1e6 / count if count else 0.0
        out[name + '_buckets'] = list(buckets)
        out[name + '_min_us'] = min_us
        out[name + '_max_us'] = max_us
    return out


def server_metrics():
    """mod_wsgi.server_metrics(): Apache's scoreboard (every process and worker slot), where
    WSGIServerMetrics On (embedded) or server-metrics=On (daemon) allows it; else None."""
    raw = _server_metrics_json()
    if raw is None:
        return None
    import json
    return json.loads(raw)
