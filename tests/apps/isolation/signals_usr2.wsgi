# Installs a SIGUSR2 handler (a signal Apache does not use) when imported; each request reports
# whether it is installed.
import signal


def handler(signum, frame):
    pass


signal.signal(signal.SIGUSR2, handler)


def application(environ, start_response):
    usr2 = "installed" if signal.getsignal(signal.SIGUSR2) is handler else "not-installed"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("usr2=%s" % usr2).encode()]
