"""A minimal one-file Django project for the oxwsgi benchmark: settings, URLconf and one view.

The view goes through Django's real request path: URL resolving, the middleware stack
(security, common, clickjacking), the template engine (a loop over 20 rows with a filter) and
HttpResponse. No database.
"""

SECRET_KEY = "oxwsgi-bench-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchsite"
USE_TZ = True
INSTALLED_APPS = []
DATABASES = {}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": False}]
LOGGING_CONFIG = None

PAGE = """<!doctype html>
<html><head><title>{{ title }}</title></head>
<body><h1>{{ title|upper }}</h1>
<table>{% for row in rows %}<tr><td>{{ row.id }}</td><td>{{ row.name|title }}</td><td>{{ row.score|floatformat:2 }}</td></tr>{% endfor %}</table>
<p>{{ rows|length }} rows, path {{ request_path }}</p>
</body></html>
"""

_template = None


def index(request):
    global _template
    from django.http import HttpResponse
    from django.template import engines

    if _template is None:
        _template = engines["django"].from_string(PAGE)
    rows = [{"id": i, "name": "row number %d" % i, "score": i * 1.5} for i in range(20)]
    html = _template.render({"title": "Django bench", "rows": rows, "request_path": request.path})
    return HttpResponse(html)


def _urlpatterns():
    from django.urls import path

    return [path("", index)]


urlpatterns = _urlpatterns()
