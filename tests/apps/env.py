# Reports what a request sees, one "key<TAB>ascii(value)" line per item, sorted.
# Environ keys come first; derived facts start with "@".
import sys


def _interp_id():
    try:
        try:
            import _interpreters as x  # Python 3.13+: get_current() is (id, whence)
        except ImportError:
            import _xxsubinterpreters as x  # 3.11, 3.12
        current = x.get_current()
        return int(current[0] if isinstance(current, tuple) else current)
    except Exception as e:  # pragma: no cover
        return 'unknown: %r' % (e,)


def _report(environ, start_response, callable_name):
    out = {'@callable': callable_name, '@pid': __import__('os').getpid()}
    for k, v in environ.items():
        out[k] = v
    # Not str, as in mod_wsgi: the wsgi.* objects, two version tuples and three counters.
    typed = ('wsgi.', 'mod_wsgi.version', 'apache.version', 'mod_wsgi.thread_id',
             'mod_wsgi.thread_requests', 'mod_wsgi.total_requests')
    out['@all_str'] = all(isinstance(v, str) for k, v in environ.items() if not k.startswith(typed))
    out['@non_str'] = sorted(k for k, v in environ.items()
                             if not isinstance(v, str) and not k.startswith(typed))
    out['@file_wrapper'] = callable(environ.get('wsgi.file_wrapper'))
    import mod_wsgi
    out['@mod_wsgi.version'] = mod_wsgi.version
    out['@mod_wsgi.process_group'] = mod_wsgi.process_group
    out['@mod_wsgi.application_group'] = mod_wsgi.application_group
    out['@modules_id'] = id(sys.modules)
    out['@interp_id'] = _interp_id()
    out['@counter'] = _bump()
    body = ''.join('%s\t%s\n' % (k, ascii(out[k])) for k in sorted(out))
    data = body.encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(data)))])
    return [data]


def application(environ, start_response):
    return _report(environ, start_response, 'application')


def app2(environ, start_response):
    return _report(environ, start_response, 'app2')


def _bump():
    # Per-interpreter state that any script in the interpreter shares: a module in sys.modules.
    import types
    mod = sys.modules.setdefault('_oxwsgi_test_shared', types.ModuleType('_oxwsgi_test_shared'))
    mod.count = getattr(mod, 'count', 0) + 1
    return mod.count
