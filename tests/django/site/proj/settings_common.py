"""Settings shared by the two sites of this one Django codebase (proj.settings_a at "/",
proj.settings_b at "/suburl"). `proj/local.py` is written by the test: where the data lives."""

from pathlib import Path

from .local import DATA_DIR

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "oxwsgi-integration-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "proj.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(Path(DATA_DIR) / "db.sqlite3"),
    }
}
# Fast hashing: the tests log in, they do not measure PBKDF2.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "whoami"
