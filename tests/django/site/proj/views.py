import os

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import reverse


def describe(request, **extra):
    import mod_wsgi

    lines = {
        "label": settings.SITE_LABEL,
        "settings": settings.SETTINGS_MODULE,
        "environ": os.environ.get("DJANGO_SETTINGS_MODULE", "<unset>"),
        "pid": os.getpid(),
        "group": mod_wsgi.application_group,
        "script_name": request.META.get("SCRIPT_NAME", ""),
        "login_url": reverse("login"),
    }
    lines.update(extra)
    text = "".join("%s=%s\n" % kv for kv in lines.items())
    return HttpResponse(text, content_type="text/plain")


def index(request):
    return describe(request)


@login_required
def whoami(request):
    return describe(request, user=request.user.get_username())
