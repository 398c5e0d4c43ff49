"""WSGI entry point of the one-file Django project (benchsite.py), mounted at /django."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
