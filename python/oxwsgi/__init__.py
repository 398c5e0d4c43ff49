"""oxwsgi: Apache's mod_wsgi rebuilt in Rust, as a wheel.

The package carries two files built from the Rust crate: the ``oxwsgi`` command (this
directory's ``oxwsgi`` executable) and the Apache module (``libmod_oxwsgi.so``, the file that
``LoadModule wsgi_module`` names). The ``oxwsgi`` console script and ``python -m oxwsgi`` both
run :func:`main`, which replaces this Python process with the command. The command finds the
module next to itself, and the virtualenv it is installed in through ``$OXWSGI_PYTHON``.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

#: The ``oxwsgi`` command.
COMMAND = os.path.join(HERE, "oxwsgi")

#: The Apache module, for ``LoadModule wsgi_module "<MODULE>"``.
MODULE = os.path.join(HERE, "libmod_oxwsgi.so")


def main(argv=None):
    """Runs ``oxwsgi ARGS`` (``sys.argv[1:]`` by default) in place of this process."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not sys.platform.startswith("linux"):
        sys.exit("oxwsgi: this wheel is for Linux (Apache httpd 2.4 with Python 3.11), not %s" % sys.platform)
    env = dict(os.environ)
    if sys.executable:
        # The Python this package is installed for: its virtualenv is the default Python home.
        env["OXWSGI_PYTHON"] = sys.executable
    try:
        os.execve(COMMAND, ["oxwsgi"] + args, env)
    except OSError as e:
        sys.exit("oxwsgi: cannot run %s: %s (reinstall with: pip install --force-reinstall oxwsgi)" % (COMMAND, e.strerror))
