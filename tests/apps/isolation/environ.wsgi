# Reads and writes os.environ on request, and starts child processes, so tests can check that
# each application group has its own environment. One operation per request:
#   /?op=set&k=K&v=V       os.environ[K] = V
#   /?op=setdefault&k=K&v=V  os.environ.setdefault(K, V)
#   /?op=putenv&k=K&v=V    os.putenv(K, V)
#   /?op=del&k=K           del os.environ[K]
#   /?op=unsetenv&k=K      os.unsetenv(K)
#   /?op=get&k=K           nothing (just report)
#   /?op=subprocess|system|popen|python&k=K   start a child and report what it sees for K
# The answer is "key=value" lines: pid, group, os (os.environ.get(K)), environ (the WSGI
# environ's K), child (the child's K) and result (what the operation returned); "<unset>" for
# a missing value.
import os
import subprocess
import sys
import tempfile
from urllib.parse import parse_qs

import mod_wsgi

UNSET = "<unset>"


def child_value(op, key):
    if op == "subprocess":
        out = subprocess.run(["/usr/bin/env"], capture_output=True, check=True).stdout.decode()
    elif op == "python":
        code = "import os, sys; sys.stdout.write(os.environ.get(sys.argv[1], %r))" % UNSET
        return subprocess.run([sys.executable, "-c", code, key], capture_output=True, check=True).stdout.decode()
    elif op == "popen":
        with os.popen("/usr/bin/env") as f:
            out = f.read()
    elif op == "system":
        fd, path = tempfile.mkstemp()
        os.close(fd)
        try:
            status = os.system("/usr/bin/env > %s" % path)
            assert status == 0, status
            assert os.system("exit 3") == 3 << 8
            with open(path) as f:
                out = f.read()
        finally:
            os.unlink(path)
    else:
        raise ValueError(op)
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name == key:
            return value
    return UNSET


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    op, key, value = q.get("op", "get"), q.get("k", "X"), q.get("v", "")
    result = child = ""
    if op == "set":
        os.environ[key] = value
    elif op == "setdefault":
        result = os.environ.setdefault(key, value)
    elif op == "putenv":
        os.putenv(key, value)
    elif op == "del":
        del os.environ[key]
    elif op == "unsetenv":
        os.unsetenv(key)
    elif op in ("subprocess", "system", "popen", "python"):
        child = child_value(op, key)
    lines = [
        "pid=%d" % os.getpid(),
        "group=%s" % mod_wsgi.application_group,
        "os=%s" % os.environ.get(key, UNSET),
        "environ=%s" % environ.get(key, UNSET),
        "child=%s" % child,
        "result=%s" % result,
    ]
    body = ("\n".join(lines) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
