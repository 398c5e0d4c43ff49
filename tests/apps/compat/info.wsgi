# Compatibility comparison (tests/compat_mod_wsgi.rs): the interpreter as a script sees it:
# the mod_wsgi module, sys.argv/stdout/stderr, the script module's naming, sys.path.
# One "key<TAB>value" line per fact.
import os
import re
import sys

import mod_wsgi

_MODULE_NAME = __name__
_FILE = globals().get('__file__')
_LOADER = type(globals().get('__loader__')).__name__
_SPEC = globals().get('__spec__')

# What print() did at import time: goes somewhere without failing.
print('compat-import-time-stdout')
print('compat-import-time-stderr', file=sys.stderr)


def _type(v):
    t = type(v)
    mod = t.__module__
    return t.__qualname__ if mod == 'builtins' else '%s.%s' % (mod, t.__qualname__)


def _value(v):
    if v is None or isinstance(v, (str, bytes, int, float, bool, tuple)):
        return ascii(v)
    return '<object>'


def _norm(s):
    # What differs per run: the module name's md5 (checked separately) and object addresses.
    s = re.sub(r'_mod_wsgi_[0-9a-f]{32}', '_mod_wsgi_<md5>', s)
    return re.sub(r' at 0x[0-9a-f]+', ' at 0x<addr>', s)


def _facts(environ):
    out = {}
    for name in sorted(dir(mod_wsgi)):
        if name.startswith('__') and name not in ('__name__', '__doc__'):
            continue
        v = getattr(mod_wsgi, name)
        out['mod_wsgi.%s' % name] = '%s %s' % (_type(v), '<callable>' if callable(v) else _value(v))
    out['module.__name__'] = ascii(_MODULE_NAME)
    out['module.__qualname__'] = ascii(globals().get('__qualname__'))
    out['module.__package__'] = ascii(globals().get('__package__'))
    out['module.globals'] = ','.join(sorted(k for k in globals() if k.startswith('__')))
    out['module.__file__'] = ascii(_FILE)
    out['module.__loader__'] = _LOADER
    out['module.__spec__'] = ascii(_SPEC)
    out['module.in_sys.modules'] = ascii(_MODULE_NAME in sys.modules)
    out['module.name_is_md5_of_file'] = ascii(
        _MODULE_NAME == '_mod_wsgi_' + __import__('hashlib').md5(_FILE.encode('utf-8')).hexdigest())
    out['module.__builtins__'] = _type(globals().get('__builtins__'))
    out['sys.argv'] = ascii(getattr(sys, 'argv', '<missing>'))
    out['sys.executable'] = ascii(sys.executable)
    out['sys.prefix'] = ascii(sys.prefix)
    out['sys.flags.optimize'] = ascii(sys.flags.optimize)
    out['sys.flags.dont_write_bytecode'] = ascii(sys.flags.dont_write_bytecode)
    out['sys.dont_write_bytecode'] = ascii(sys.dont_write_bytecode)
    out['sys.warnoptions'] = ascii(sys.warnoptions)
    out['sys.path'] = ascii(sys.path)
    for name in ('stdin', 'stdout', 'stderr'):
        f = getattr(sys, name)
        out['sys.%s.type' % name] = _type(f)
        for attr in ('encoding', 'errors', 'line_buffering', 'name', 'mode'):
            out['sys.%s.%s' % (name, attr)] = ascii(getattr(f, attr, '<missing>'))
        try:
            out['sys.%s.fileno' % name] = ascii(f.fileno())
        except Exception as e:
            out['sys.%s.fileno' % name] = 'raises %s' % type(e).__name__
        try:
            out['sys.%s.isatty' % name] = ascii(f.isatty())
        except Exception as e:
            out['sys.%s.isatty' % name] = 'raises %s' % type(e).__name__
    for name in ('stdout', 'stderr'):
        f = getattr(sys, name)
        out['sys.%s.public' % name] = ','.join(sorted(n for n in dir(f) if not n.startswith('_')))
    errors = environ['wsgi.errors']
    out['wsgi.errors.public'] = ','.join(sorted(n for n in dir(errors) if not n.startswith('_')))
    inp = environ['wsgi.input']
    out['wsgi.input.public'] = ','.join(sorted(n for n in dir(inp) if not n.startswith('_')))
    out['wsgi.input.iterable'] = ascii(hasattr(inp, '__iter__'))
    fw_type = environ['wsgi.file_wrapper']
    out['wsgi.file_wrapper.type'] = _type(fw_type)
    out['wsgi.file_wrapper.name'] = getattr(fw_type, '__name__', '?')
    import io
    closed = []
    class F(io.BytesIO):
        def close(self):
            closed.append(True)
            super().close()
    fw = fw_type(F(b'abcdef'), 4)
    out['wsgi.file_wrapper.instance.public'] = ','.join(sorted(n for n in dir(fw) if not n.startswith('_')))
    out['wsgi.file_wrapper.filelike_attr'] = ascii(hasattr(fw, 'filelike'))
    out['wsgi.file_wrapper.blksize_attr'] = ascii(getattr(fw, 'blksize', '<missing>'))
    out['wsgi.file_wrapper.iter'] = ascii(list(fw))
    fw.close()
    out['wsgi.file_wrapper.close_closes_file'] = ascii(closed == [True])
    try:
        fw2 = fw_type(io.BytesIO(b'xyz'))
        out['wsgi.file_wrapper.default_blksize'] = ascii(getattr(fw2, 'blksize', '<missing>'))
    except Exception as e:
        out['wsgi.file_wrapper.default_blksize'] = 'raises %s' % type(e).__name__
    out['sys.__stdout__'] = _type(sys.__stdout__)
    out['sys.__stderr__'] = _type(sys.__stderr__)
    out['sys.__stdin__'] = _type(sys.__stdin__)
    try:
        out['sys.stdin.read'] = ascii(sys.stdin.read())
    except Exception as e:
        out['sys.stdin.read'] = 'raises %s: %s' % (type(e).__name__, e)
    out['os.getcwd'] = ascii(os.getcwd())
    out['os.environ.keys'] = ascii(sorted(os.environ))
    out['signal.SIGINT'] = ascii(str(__import__('signal').getsignal(2)))
    out['threading.main'] = ascii(__import__('threading').current_thread() is __import__('threading').main_thread())
    out['sys.getfilesystemencoding'] = ascii(sys.getfilesystemencoding())
    out['locale.preferred'] = ascii(__import__('locale').getpreferredencoding(False))
    out['os.environ.HOME'] = ascii(os.environ.get('HOME'))
    out['os.environ.USER'] = ascii(os.environ.get('USER'))
    out['os.environ.LOGNAME'] = ascii(os.environ.get('LOGNAME'))
    out['os.environ.has_wsgi_request_vars'] = ascii(sorted(k for k in os.environ if k.startswith(('HTTP_', 'REQUEST_', 'SCRIPT_', 'mod_wsgi'))))
    out['environ.wsgi.errors is sys.stderr'] = ascii(environ['wsgi.errors'] is sys.stderr)
    return out


def application(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/print':
        # print() to both streams without flushing; the test looks for the lines in the log.
        tag = environ.get('QUERY_STRING', '')
        print('compat-stdout-%s' % tag)
        print('compat-stderr-%s' % tag, file=sys.stderr)
        sys.stderr.write('compat-partial-%s' % tag)
        environ['wsgi.errors'].write('compat-errors-%s\n' % tag)
        body = b'printed\n'
    else:
        facts = _facts(environ)
        body = ''.join('%s\t%s\n' % (k, _norm(facts[k])) for k in sorted(facts)).encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
