"""WSGITelemetryService: every garbage-collector pass, with the collector's state after it,
goes to the telemetry reporter (mod_wsgi 6's GC records) through the native `telemetry_gc`."""

from _oxwsgi_native import telemetry_gc as _telemetry_gc


def reporter(application_group):
    """A gc.callbacks hook reporting the passes of this interpreter (`application_group`)."""
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


def install(application_group):
    import gc
    gc.callbacks.append(reporter(application_group))
