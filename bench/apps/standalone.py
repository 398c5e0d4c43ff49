"""WSGI entry point for the standalone servers of the oxwsgi benchmark (Granian, Gunicorn).

Apache mounts the bench apps with `WSGIScriptAlias /wsgi app.wsgi` and
`WSGIScriptAlias /django django.wsgi`; a standalone server takes one "module:callable", so this
module loads the same two files and mounts them the same way: for a path under /wsgi or
/django it moves the prefix from PATH_INFO to SCRIPT_NAME and calls that file's
`application`. The cost of this dispatch (a prefix test and two environ writes) is the only
code the standalone servers run that the Apache variants do not.
"""

import os
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, filename):
    """The module of a .wsgi script file (not importable by name: it does not end in .py)."""
    loader = SourceFileLoader(name, os.path.join(HERE, filename))
    module = module_from_spec(spec_from_loader(name, loader))
    loader.exec_module(module)
    return module.application


MOUNTS = (("/wsgi", load("bench_app_wsgi", "app.wsgi")),
          ("/django", load("bench_django_wsgi", "django.wsgi")))


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    for prefix, app in MOUNTS:
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):]
            return app(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
