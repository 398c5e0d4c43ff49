"""WSGI script files: each runs as a module of its own, named as mod_wsgi names it, and runs
again when its mtime changes (or when its reload_required() asks for it)."""

import _thread
import sys
import types

from _oxwsgi_native import log as _log

LOG_INFO = 6

_load_lock = _thread.RLock()
# path -> (mtime, module)
_scripts = {}
_case_sensitive = True
# Where scripts are loaded, as mod_wsgi 6's log lines name it.
_context = 'main interpreter in embedded mode'


def configure(case_sensitive, process_group='', application_group=''):
    """WSGICaseSensitivity Off: script paths are lower-cased for their module names. The groups
    name this interpreter in the "Loading WSGI script" lines."""
    global _case_sensitive, _context
    _case_sensitive = case_sensitive
    _context = interp_context(process_group, application_group)


def interp_context(process_group, application_group):
    """mod_wsgi 6's `wsgi_format_interp_context`."""
    interp = "sub-interpreter '%s'" % application_group if application_group else 'main interpreter'
    if process_group:
        return "%s of daemon process '%s'" % (interp, process_group)
    return interp + ' in embedded mode'


def module_name(path):
    """mod_wsgi's name for a script's module. `_md5` avoids loading OpenSSL through hashlib.
    With WSGICaseSensitivity Off the path is lower-cased first (one module per file on a
    case-insensitive file system), as in mod_wsgi."""
    try:
        from _md5 import md5
    except ImportError:
        from hashlib import md5
    if not _case_sensitive:
        path = path.lower()
    return '_mod_wsgi_' + md5(path.encode('utf-8', 'surrogateescape')).hexdigest()


def load_script(path, mtime, reload, force=False):
    """The module for a WSGI script file, executed once and again when its mtime changes (or
    when `force`: its reload_required() asked for it)."""
    entry = _scripts.get(path)
    if entry is not None and not force and (not reload or entry[0] == mtime):
        return entry[1]
    with _load_lock:
        entry = _scripts.get(path)
        if entry is not None and not force and (not reload or entry[0] == mtime):
            return entry[1]
        # mod_wsgi 6's line, at LogLevel info.
        _log(None, LOG_INFO, "%s WSGI script '%s' into %s." % (
            'Loading' if entry is None else 'Reloading', path, _context))
        name = module_name(path)
        module = types.ModuleType(name)
        module.__file__ = path
        # As an imported module has them (pickle, inspect, linecache and importlib use them).
        from importlib.machinery import SourceFileLoader
        from importlib.util import spec_from_file_location
        loader = SourceFileLoader(name, path)
        module.__loader__ = loader
        module.__spec__ = spec_from_file_location(name, path, loader=loader)
        module.__cached__ = module.__spec__.cached
        module.__mtime__ = mtime
        with open(path, 'rb') as f:
            source = f.read()
        code = compile(source, path, 'exec', dont_inherit=True)
        old = sys.modules.get(name)
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)
        except BaseException:
            if old is not None:
                sys.modules[name] = old
            else:
                sys.modules.pop(name, None)
            raise
        _scripts[path] = (mtime, module)
        return module


def exception_header(exc, script):
    """mod_wsgi 6's first log line for an exception a WSGI script raised (its WSGI0174, or
    WSGI0175 for a SystemExit, which is otherwise ignored): the class and where it ran."""
    if isinstance(exc, SystemExit):
        return "WSGI0175: [script %s] %s exception raised by WSGI script '%s' for %s; ignored." % (
            script, _type_name(exc), script, _context)
    return "WSGI0174: [script %s] %s exception raised processing WSGI script '%s' for %s." % (
        script, _type_name(exc), script, _context)


def _type_name(exc):
    """The class name as mod_wsgi logs it (C's tp_name: builtins bare, others module.Name)."""
    cls = type(exc)
    module = getattr(cls, '__module__', 'builtins')
    return cls.__qualname__ if module == 'builtins' else '%s.%s' % (module, cls.__qualname__)


def format_exception(exc):
    """The traceback of `exc` as Python prints it."""
    import traceback
    return ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
