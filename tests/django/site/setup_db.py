"""Run with the venv's python before Apache starts: creates the sqlite database and a user.

    DJANGO_SETTINGS_MODULE=proj.settings_a python setup_db.py USERNAME PASSWORD
"""

import sys

import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0, interactive=False)

from django.contrib.auth import get_user_model  # noqa: E402

get_user_model().objects.create_user(sys.argv[1], password=sys.argv[2])
print("ok")
