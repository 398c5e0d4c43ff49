# An application wrapped in wsgiref.validate.validator: every PEP 3333 check it makes is an
# AssertionError (a 500 and a traceback in the error log) if the server gets something wrong.
import warnings
from wsgiref.validate import validator

warnings.simplefilter('always')


def app(environ, start_response):
    length = int(environ.get('CONTENT_LENGTH') or 0)
    inp = environ['wsgi.input']
    body = inp.read(length)
    first = inp.readline()  # at the end: b''
    environ['wsgi.errors'].write('validated %s %d\n' % (environ['REQUEST_METHOD'], len(body)))
    environ['wsgi.errors'].flush()
    write = start_response('200 OK', [('Content-Type', 'text/plain')])
    write(b'method=' + environ['REQUEST_METHOD'].encode() + b'\n')
    return [b'body=', body, b'\n', b'rest=' + first]


application = validator(app)
