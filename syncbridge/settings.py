"""SyncBridge settings. Every value comes from the environment (see README and .env.example)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The default only suits the demo and tests; `manage.py check --deploy` flags it in production.
SECRET_KEY = env("SECRET_KEY", default="django-insecure-syncbridge-demo-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "integrations",
    "automations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "syncbridge.middleware.RejectNulInQuery",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "syncbridge.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "syncbridge.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo runs web, worker and sandbox against one SQLite file: wait instead of failing.
    # IMMEDIATE: a transaction that reads then writes takes the write lock up front instead of
    # failing with "database is locked" when another process wrote in between.
    # WAL lets the web server read while the worker writes (the demo runs both on one file).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "integrations:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "static"

# Tokens and API secrets are encrypted at rest with this key (Fernet, urlsafe base64, 32 bytes).
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY", default="")

# The address remote services use to reach this installation (OAuth redirect, webhooks).
PUBLIC_URL = env("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

PIPEDRIVE_CLIENT_ID = env("PIPEDRIVE_CLIENT_ID", default="syncbridge-demo-client")
PIPEDRIVE_CLIENT_SECRET = env("PIPEDRIVE_CLIENT_SECRET", default="syncbridge-demo-secret")
PIPEDRIVE_REDIRECT_URI = env(
    "PIPEDRIVE_REDIRECT_URI", default=f"{PUBLIC_URL}/connect/pipedrive/callback/"
)
PIPEDRIVE_OAUTH_URL = env("PIPEDRIVE_OAUTH_URL", default="https://oauth.pipedrive.com").rstrip("/")
# Only used for connections made with a plain API token (legacy): OAuth hands out api_domain.
PIPEDRIVE_API_URL = env("PIPEDRIVE_API_URL", default="https://api.pipedrive.com").rstrip("/")
PIPEDRIVE_BURST_LIMIT = env.int("PIPEDRIVE_BURST_LIMIT", default=80)  # requests per 2 s (Lite)
SNOVIO_API_URL = env("SNOVIO_API_URL", default="https://api.snov.io").rstrip("/")
SNOVIO_RATE_LIMIT = env.int("SNOVIO_RATE_LIMIT", default=60)  # requests per minute
# Linked prospects whose profile each catch-up re-reads by id (list rows lack position etc.).
SNOVIO_PROFILE_RECHECKS = env.int("SNOVIO_PROFILE_RECHECKS", default=30)

HTTP_TIMEOUT = env.float("HTTP_TIMEOUT", default=15.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=4)
HTTP_BACKOFF = env.float("HTTP_BACKOFF", default=0.5)
HTTP_MAX_WAIT = env.float("HTTP_MAX_WAIT", default=60.0)  # longest sleep on a 429 before giving up

# Sandbox simulators (demo, end-to-end tests, benchmarks).
SANDBOX_STATE_FILE = env("SANDBOX_STATE_FILE", default=str(BASE_DIR / "var" / "sandbox.json"))
# Pipedrive's official OpenAPI specs, for the sandbox's strict mode (a copy ships in docs/specs).
PIPEDRIVE_SPEC_DIR = env(
    "PIPEDRIVE_SPEC_DIR", default=str(BASE_DIR / "docs" / "specs" / "pipedrive")
)
SANDBOX_PIPEDRIVE_API_TOKEN = env("SANDBOX_PIPEDRIVE_API_TOKEN", default="sandbox-pipedrive-token")
SANDBOX_SNOVIO_CLIENT_ID = env("SANDBOX_SNOVIO_CLIENT_ID", default="sandbox-snovio-user")
SANDBOX_SNOVIO_CLIENT_SECRET = env("SANDBOX_SNOVIO_CLIENT_SECRET", default="sandbox-snovio-secret")
# The simulators are an app of their own (`manage.py sandbox`, `manage.py demo`), installed only
# when asked for: `make demo` and the test settings set SYNCBRIDGE_SANDBOX=true. They need the
# `sandbox` extra (`pip install -e ".[sandbox]"`), which a production install leaves out.
SANDBOX_ENABLED = env.bool("SYNCBRIDGE_SANDBOX", default=False)
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("integrations.sandbox")

REDIS_URL = env("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "syncbridge",
    # Tasks mostly wait on remote APIs, and a sync drain may sit out Snov.io's 60 requests per
    # minute for minutes: more workers than cores keep automations running meanwhile.
    "workers": env.int("Q_WORKERS", default=4),
    "timeout": 600,
    "retry": 900,
    "max_attempts": 3,
    # ORM broker: how long the pusher sleeps when the queue is empty (the most a new task waits).
    "poll": env.float("Q_POLL", default=0.2),
    "catch_up": False,
    # Successful tasks kept for the admin. Saving one makes the monitor read every kept success
    # (inside a write transaction) to prune the oldest: ~5 ms + 20 us per kept row per task.
    "save_limit": env.int("Q_SAVE_LIMIT", default=100),
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
Q_CLUSTER["sync"] = env.bool("Q_SYNC", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
