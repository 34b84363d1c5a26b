"""Settings of the django-scim2 test remote: an SQLite file, no sessions, bearer tokens."""
import os

SECRET_KEY = "test-remote-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "remote.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_scim",
    "remote",
]
AUTH_USER_MODEL = "remote.User"
MIDDLEWARE = [
    "remote.auth.BearerTokenMiddleware",
    "django_scim.middleware.SCIMAuthCheckMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SCIM_REMOTE_DB", "remote.sqlite3"),
    }
}
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "SCHEME": "http",
    "GROUP_MODEL": "remote.models.Group",
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A static bearer token",
        }
    ],
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
