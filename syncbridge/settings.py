"""SyncBridge settings. Every value comes from the environment (see README and .env.example)."""

from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from syncbridge import demo_env

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A running `manage.py demo` shares its sandbox with every command in this folder (see
# syncbridge/demo_env.py); SYNCBRIDGE_DEMO_ENV="" turns that off (the test settings do).
DEMO_ENV_FILE = env("SYNCBRIDGE_DEMO_ENV", default=str(BASE_DIR / "var" / "demo.env"))
if DEMO_ENV_FILE:
    demo_env.load(Path(DEMO_ENV_FILE))
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
    # Serves the collected static files from the WSGI server itself (no separate file server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
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
    # synchronous=NORMAL (SQLite's advice for WAL): a commit is in the WAL file before the
    # webhook's 200 and survives the app crashing, but is flushed to disk at checkpoints, not at
    # every commit; FULL flushes each commit (one ~6 ms fsync, and SQLite has one writer at a
    # time: it capped intake near 70 deliveries/s) and only adds safety against a power cut.
    sqlite_synchronous = env.str("SQLITE_SYNCHRONOUS", default="NORMAL").upper()
    if sqlite_synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ImproperlyConfigured("SQLITE_SYNCHRONOUS must be NORMAL, FULL, EXTRA or OFF")
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={sqlite_synchronous};",
        }
    )
else:
    # A new PostgreSQL connection per request costs more than the request itself (webhook
    # intake at 100/s: p99 3.4 s without, 21 ms with persistent connections). Health checks
    # replace a connection the server dropped instead of failing the next request on it.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
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
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies made by `collectstatic`; WhiteNoise serves them with far-future caching.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

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
# API-token connections have a lower burst limit than OAuth apps (Lite: 20 per 2 s).
PIPEDRIVE_API_TOKEN_BURST_LIMIT = env.int("PIPEDRIVE_API_TOKEN_BURST_LIMIT", default=20)
PIPEDRIVE_SEARCH_LIMIT = env.int("PIPEDRIVE_SEARCH_LIMIT", default=10)  # search: per 2 s, all plans
# Share of a company's daily token budget kept for real-time changes and automations: below
# it, transfers and catch-ups wait for the next day (UTC).
PIPEDRIVE_BUDGET_RESERVE = env.float("PIPEDRIVE_BUDGET_RESERVE", default=0.1)
# The company's daily token budget when Pipedrive's answers do not say it (0: unknown; it is
# 30,000 x plan multiplier x seats).
PIPEDRIVE_DAILY_BUDGET = env.int("PIPEDRIVE_DAILY_BUDGET", default=0)
SNOVIO_API_URL = env("SNOVIO_API_URL", default="https://api.snov.io").rstrip("/")
SNOVIO_RATE_LIMIT = env.int("SNOVIO_RATE_LIMIT", default=60)  # requests per minute
# Linked prospects whose profile each catch-up re-reads by id (list rows lack position etc.).
SNOVIO_PROFILE_RECHECKS = env.int("SNOVIO_PROFILE_RECHECKS", default=30)

HTTP_TIMEOUT = env.float("HTTP_TIMEOUT", default=15.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=4)
HTTP_BACKOFF = env.float("HTTP_BACKOFF", default=0.5)
HTTP_MAX_WAIT = env.float("HTTP_MAX_WAIT", default=60.0)  # longest sleep on a 429 before giving up

# Sync history: events older than this are pruned daily (each record's newest event is kept).
SYNC_EVENT_RETENTION_DAYS = env.int("SYNC_EVENT_RETENTION_DAYS", default=90)

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

# Production (see the README's "Running in production"): a real installation refuses to start
# with secrets it could lose or leak. The sandbox mode (demo, tests) is exempt: it holds no real
# credentials.
if not DEBUG and not SANDBOX_ENABLED:
    if not FIELD_ENCRYPTION_KEY:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY is required when DEBUG is false: tokens and API secrets are "
            'encrypted with it. Generate one with: python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"'
        )
    try:
        Fernet(FIELD_ENCRYPTION_KEY)
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None

# HTTPS behind a reverse proxy. The proxy terminates TLS and says so in a header, e.g.
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (only set it when the proxy always
# overwrites that header, or clients could claim HTTPS themselves).
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_header:
    if len(_proxy_header) != 2:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER takes a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_header[0], _proxy_header[1])
# With an https PUBLIC_URL, cookies are secure and plain HTTP is redirected by default.
_https = PUBLIC_URL.startswith("https://")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_https)
# A load balancer probes /healthz over plain HTTP inside the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_https)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_https)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# Alert emails (a failed connection, transfer or record). The console backend prints them.
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if not DEBUG and not SANDBOX_ENABLED
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="SyncBridge <syncbridge@localhost>")
# At most one email per integration and cause within this many minutes.
ALERT_EMAIL_INTERVAL_MINUTES = env.int("ALERT_EMAIL_INTERVAL_MINUTES", default=60)

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
    # Each cluster writes its heartbeat every half second, with a 3 s lifetime, to this cache
    # (Redis holds it when REDIS_URL is set); /healthz reads it from the web process. A file
    # cache shares it between the processes of one machine without writes to the database.
    Q_CLUSTER["cache"] = "cluster_status"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "cluster_status": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": env("CLUSTER_STATUS_DIR", default=str(BASE_DIR / "var" / "cluster-status")),
    },
}
Q_CLUSTER["sync"] = env.bool("Q_SYNC", default=False)
# An automation task also performs up to this many contacts whose runs are due, side by side in
# threads (a run mostly waits on Pipedrive); each thread keeps its own database connection.
AUTOMATION_BATCH = env.int("AUTOMATION_BATCH", default=8)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
