# Tries to take signals from Apache when imported; each request reports whether it worked:
# "usr2=installed|not-installed term=installed|not-installed returned=<what signal.signal returned>".
import signal


def handler(signum, frame):
    pass


returned = signal.signal(signal.SIGUSR2, handler)
try:
    signal.signal(signal.SIGTERM, handler)
    term_error = ""
except ValueError as e:  # only the main thread of the main interpreter may install handlers
    term_error = str(e)


def application(environ, start_response):
    usr2 = "installed" if signal.getsignal(signal.SIGUSR2) is handler else "not-installed"
    term = "installed" if signal.getsignal(signal.SIGTERM) is handler else "not-installed"
    body = "usr2=%s term=%s returned=%r error=%s" % (usr2, term, returned, term_error)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
