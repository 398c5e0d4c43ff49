# The first virtual host's application: logs every time it is imported or called, so a test can
# tell that a refused request never reached it.
import sys

print("SITE-A imported", file=sys.stderr)


def application(environ, start_response):
    print("SITE-A called for host %r" % environ.get("HTTP_HOST"), file=environ["wsgi.errors"])
    body = b"site-a"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
