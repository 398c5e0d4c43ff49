# Reports where Python came from and what it can import: "key=value" lines.
import sys


def application(environ, start_response):
    lines = [
        "prefix=%s" % sys.prefix,
        "base_prefix=%s" % sys.base_prefix,
        "executable=%s" % sys.executable,
        "version=%d.%d" % sys.version_info[:2],
    ]
    for i, p in enumerate(sys.path[:4]):
        lines.append("path%d=%s" % (i, p))
    try:
        import shadow

        lines.append("shadow=%s" % shadow.WHERE)
    except ImportError as e:
        lines.append("shadow=<%s>" % e)
    try:
        import from_pth

        lines.append("from_pth=%s" % from_pth.WHERE)
    except ImportError as e:
        lines.append("from_pth=<%s>" % e)
    try:
        import django

        lines.append("django=%s" % django.get_version())
    except ImportError:
        lines.append("django=<none>")
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
