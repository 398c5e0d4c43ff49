# Compatibility comparison (tests/compat_mod_wsgi.rs): the whole environ, one line per key:
#   key<TAB>type<TAB>value
# type is module.qualname of the value's type; value is ascii() of plain values (str, bytes,
# int, float, bool, tuple, None) and "<object>" for anything else (addresses differ per run).
# Before the environ, "#"-prefixed lines list the public attributes of wsgi.input and
# wsgi.errors, and the request body as read.


def _type(v):
    t = type(v)
    mod = t.__module__
    return t.__qualname__ if mod == 'builtins' else '%s.%s' % (mod, t.__qualname__)


def _value(v):
    if v is None or isinstance(v, (str, bytes, int, float, bool, tuple)):
        return ascii(v)
    return '<object>'


def _methods(obj):
    return ','.join(sorted(n for n in dir(obj) if not n.startswith('_')))


def application(environ, start_response):
    lines = []
    for k in ('wsgi.input', 'wsgi.errors'):
        if k in environ:
            lines.append('#public %s\t%s' % (k, _methods(environ[k])))
    # Read the body: a POST's form data must arrive the same. Without CONTENT_LENGTH (a chunked
    # request body) read() reads to the end.
    length = environ.get('CONTENT_LENGTH')
    inp = environ['wsgi.input']
    lines.append('#body\t%s' % ascii(inp.read(int(length)) if length else inp.read()))
    for k in sorted(environ):
        v = environ[k]
        lines.append('%s\t%s\t%s' % (k, _type(v), _value(v)))
    data = ('\n'.join(lines) + '\n').encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(data)))])
    return [data]
