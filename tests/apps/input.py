# wsgi.input: runs the operations named in the query string, in order, and reports what each
# returned, one "ascii(result)" per line. Operations: read, read:N, readline, readline:N,
# readlines, iter, len (of read()), adler32 (of read()), time (seconds spent so far, rounded
# to 0.1).
# With PATH_INFO /stream the response starts first and each result is written (and so sent)
# as soon as it is known.
import time
import zlib


def application(environ, start_response):
    t0 = time.monotonic()
    inp = environ['wsgi.input']
    out = []
    write = None
    if environ['PATH_INFO'] == '/stream':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
    for op in filter(None, environ.get('QUERY_STRING', '').split(',')):
        name, _, arg = op.partition(':')
        if name == 'read':
            out.append(inp.read(int(arg)) if arg else inp.read())
        elif name == 'readline':
            out.append(inp.readline(int(arg)) if arg else inp.readline())
        elif name == 'readlines':
            out.append(inp.readlines())
        elif name == 'iter':
            out.append([line for line in inp])
        elif name == 'time':
            out.append(round(time.monotonic() - t0, 1))
        elif name == 'len':
            out.append(len(inp.read()))
        elif name == 'adler32':
            out.append(zlib.adler32(inp.read()))
        else:
            raise ValueError('unknown operation %r' % op)
        if write:
            write(ascii(out.pop()).encode('ascii') + b'\n')
    if write:
        return []
    body = ''.join(ascii(x) + '\n' for x in out).encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
