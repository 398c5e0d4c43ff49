"""``python -m oxwsgi ARGS``: the same as the ``oxwsgi`` command."""

from oxwsgi import main

main()
