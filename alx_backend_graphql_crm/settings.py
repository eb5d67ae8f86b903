"""Project settings, read from the environment (docs/operations.md "Settings"; every variable in .env.example).

Entry points load the env file (`.env`, or the file CRM_ENV_FILE names) into the environment first:
alx_backend_graphql_crm/env.py.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from alx_backend_graphql_crm.env import SettingsError, env_file

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_positive(name: str, default: int) -> int:
    value = env_int(name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise SettingsError(
            f"DJANGO_SECRET_KEY is not set (required when DJANGO_DEBUG is off): put DJANGO_SECRET_KEY=<50+ random "
            f"characters> in {env_file()}, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-development-only-key"  # DEBUG only, never in production

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
if not ALLOWED_HOSTS and not DEBUG:  # set, but to nothing: every request would be a 400
    raise SettingsError(
        f"DJANGO_ALLOWED_HOSTS is empty: every request would be refused; put DJANGO_ALLOWED_HOSTS=<the host names "
        f"clients use, comma separated> in {env_file()}, or remove the line for localhost,127.0.0.1"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_filters",
    "csp",
    "graphene_django",
    "axes",  # login throttling: below, AXES_*
    "crm",
    # cronjobs extends django_crontab's `crontab` command, so it must come first.
    "cronjobs",
    "django_crontab",
]

MIDDLEWARE = [
    # Logs each plain-HTTP request SecurityMiddleware redirects to HTTPS (DJANGO_SECURE_SSL_REDIRECT).
    "alx_backend_graphql_crm.middleware.log_https_redirects",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy on every answer (below)
    # Static files from STATIC_ROOT (after `collectstatic`), compressed, with far-future cache headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "crm.auth.BearerTokenMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last (django-axes' rule): turns a login refused for a lockout into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "alx_backend_graphql_crm.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "alx_backend_graphql_crm.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a writer instead of failing with "database is locked" when cron jobs,
    # the scheduler and the web server write at once; IMMEDIATE makes write transactions
    # take the lock up front, so they queue instead of deadlocking on upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database costs seconds, not minutes: a new connection gives up after
    # DATABASE_CONNECT_TIMEOUT (psycopg's own default is 130 s); on an open one, data the server has not
    # acknowledged for DATABASE_TCP_TIMEOUT drops it (tcp_user_timeout; the kernel's own is about 15
    # minutes), and an idle one is probed after as long (keepalives), so a silent partition fails a
    # statement instead of hanging it. 0 leaves each to psycopg and the kernel.
    _connect_timeout = env_int("DATABASE_CONNECT_TIMEOUT", 5)
    _tcp_timeout = env_int("DATABASE_TCP_TIMEOUT", 10)
    for _name, _value in (("DATABASE_CONNECT_TIMEOUT", _connect_timeout), ("DATABASE_TCP_TIMEOUT", _tcp_timeout)):
        if _value < 0:
            raise SettingsError(f"{_name} must be a number of seconds >= 0 (0: the driver's own), got {_value}")
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    if _connect_timeout > 0:
        _options.setdefault("connect_timeout", _connect_timeout)
    if _tcp_timeout > 0:
        _options.setdefault("tcp_user_timeout", _tcp_timeout * 1000)  # milliseconds
        _options.setdefault("keepalives", 1)
        _options.setdefault("keepalives_idle", _tcp_timeout)
        _options.setdefault("keepalives_interval", max(1, _tcp_timeout // 3))
        _options.setdefault("keepalives_count", 3)

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked (and needs the request,
    # so authenticate() without one is an error, never an unthrottled login).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes; docs/security.md "Logins"): every password login, the admin's form included.
# LOGIN_FAILURE_LIMIT failures lock the username (from every address) and the address (for every username)
# until LOGIN_COOLOFF_MINUTES have passed since the last failure; `manage.py axes_reset_username NAME`,
# `axes_reset_ip ADDRESS`, `axes_reset` or the admin (Axes > Access attempts) unlock sooner. The address is
# REMOTE_ADDR: the connection's, or the X-Forwarded-For of a proxy in FORWARDED_ALLOW_IPS (uvicorn's
# proxy headers, docs/deploy.md), never a header an outside client sets itself.
AXES_FAILURE_LIMIT = env_positive("LOGIN_FAILURE_LIMIT", 5)
LOGIN_COOLOFF_MINUTES = env_positive("LOGIN_COOLOFF_MINUTES", 15)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Attempts while locked are refused without being recorded: the lock ends when it says, and a flood of
# them writes nothing (recorded, each appended its POST data to the attempt's row).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Failures are logged (WARNING, logger axes) with the address, for whoever unlocks or blocks it; the username
# masked (people type passwords into it), the password never.
AXES_SENSITIVE_PARAMETERS = ["username"]
AXES_COOLOFF_MESSAGE = (
    f"Account locked: too many failed logins. Try again {LOGIN_COOLOFF_MINUTES} minutes after the "
    "last one, or ask an administrator to unlock it."
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# DEBUG off: `collectstatic` writes hashed, gzip- and brotli-compressed copies and a manifest; whitenoise
# serves them with year-long cache headers. DEBUG on (`make run`, no collectstatic): the plain storage.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "alx_backend_graphql_crm.storage.StaticFilesStorage"
    },
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = True  # pages name static files through {% static %}: hashed names only
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production hardening; `manage.py check --deploy` is clean when DEBUG is off.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    # Load balancers and monitors probe health over plain HTTP; a redirect would read as down.
    SECURE_REDIRECT_EXEMPT = [r"^health/"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Secure cookies unless the site is served over plain HTTP on purpose (DJANGO_SECURE_SSL_REDIRECT=0 to try
    # `make serve` on http://127.0.0.1): browsers would drop them there and the admin login would fail.
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", SECURE_SSL_REDIRECT)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "WARNING").upper()
# Every record is printed once, by the root logger's handler: Django's own console handler on the
# `django` logger (DEBUG only) would print each django.request warning a second time.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "disallowed_host": {"()": "alx_backend_graphql_crm.middleware.DisallowedHostLine"},
    },
    # A failed run is one line on stderr (cron's mail, the journal); its traceback is in the run history.
    "formatters": {"console": {"()": "cronjobs.logformat.RunLineFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "console"},
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": LOG_LEVEL, "propagate": True},
        # A request for a Host not in DJANGO_ALLOWED_HOSTS: one line naming the variable, no traceback.
        "django.security.DisallowedHost": {"filters": ["disallowed_host"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# Content-Security-Policy (django-csp) on every answer: scripts, styles, images and requests from this
# site only; inline styles allowed (the admin and GraphiQL set style attributes), inline scripts never.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- CRM ---------------------------------------------------------------------------------------
CRM_LOG_DIR = os.environ.get("CRM_LOG_DIR", "/tmp")  # noqa: S108 - the contract's default
CRM_GRAPHQL_URL = os.environ.get("CRM_GRAPHQL_URL") or None
CRM_API_TOKEN = os.environ.get("CRM_API_TOKEN") or None
CRM_LOW_STOCK_THRESHOLD = env_int("CRM_LOW_STOCK_THRESHOLD", 10)
CRM_RESTOCK_AMOUNT = env_int("CRM_RESTOCK_AMOUNT", 10)
CRM_MAX_ORDER_ITEMS = env_int("CRM_MAX_ORDER_ITEMS", 100)  # longest productIds list createOrder accepts

# --- GraphQL -----------------------------------------------------------------------------------
GRAPHENE = {
    "SCHEMA": "alx_backend_graphql_crm.schema.schema",
    # Page size cap: a larger `first`/`last` is cut to this; a missing `first` means this many.
    "RELAY_CONNECTION_MAX_LIMIT": 100,
    # Validation stops at this many errors (graphql-core's default: 100): a hostile document
    # full of mistakes costs no more than a few of them.
    "MAX_VALIDATION_ERRORS": 20,
}
# Limits of /graphql (alx_backend_graphql_crm/api): refused documents get a clear error, never a 500.
GRAPHQL_MAX_QUERY_CHARS = 10_000  # characters of the query text, checked before parsing
# The body of a POST to /graphql, checked before it is read (413 beyond); a 1,000-row bulkCreateCustomers is ~90 KB.
# multipart/form-data is refused (415): the schema takes no uploads.
GRAPHQL_MAX_BODY_BYTES = env_int("GRAPHQL_MAX_BODY_BYTES", 256 * 1024)
# The variables, counted on the decoded JSON before graphql-core coerces them (400 beyond): every list item
# and object entry is a value (a 1,000-row bulkCreateCustomers holds ~4,000), nesting, the longest string.
GRAPHQL_MAX_VARIABLE_VALUES = 10_000
GRAPHQL_MAX_VARIABLE_DEPTH = 8
GRAPHQL_MAX_VARIABLE_STRING = 10_000
GRAPHQL_MAX_TOKENS = 250  # names, values and punctuation, counted while parsing (GraphiQL's introspection: 180)
GRAPHQL_MAX_NESTING = 32  # brackets ({[( nested in the text, counted while parsing: bounds its recursion
GRAPHQL_MAX_DEPTH = 10  # a connection adds two levels: allOrders{edges{node{customer{name}}}} is 5
GRAPHQL_MAX_FIELDS = 300  # selected fields, fragments counted at each use: the cost limit
GRAPHQL_MAX_ALIASES = 20  # each alias of a list field runs its own queries
GRAPHQL_MAX_REPEATS = 10  # one response name in one selection set: validation compares each pair
# Entries an answer may hold: each field once per object, a list as its page (see api/limits.py).
GRAPHQL_MAX_COST = 100_000
GRAPHQL_MAX_OFFSET = 10_000  # `offset` (and where an `after`/`before` cursor points) beyond this is refused
GRAPHQL_INTROSPECTION = None  # None: on exactly when DEBUG is on (GraphiQL's docs need it)
# GraphiQL's JavaScript and CSS, vendored (no CDN): see static/graphiql/README.md.
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Scheduled jobs (django-crontab format; see docs/scheduling.md) ------------------------------
# (schedule, "module.function"[, args[, kwargs]][, suffix][, options]); options may set name,
# timeout (seconds), grace (how many seconds late a run may start before it is recorded as missed
# and /health/cron/ calls the job late; default: half the interval, 1 minute to 1 hour, for
# health, no limit for starting), enabled, description, allow_overlap.
CRONJOBS = [
    (
        "*/5 * * * *",
        "crm.cron.log_crm_heartbeat",
        # run_without_history: when the database is down the heartbeat still runs, to log that it is.
        {
            "timeout": 60,
            "description": "Check the database and GraphQL; log that the CRM is alive",
            "run_without_history": True,
        },
    ),
    (
        "0 */12 * * *",
        "crm.cron.update_low_stock",
        {"timeout": 600, "description": "Restock products below CRM_LOW_STOCK_THRESHOLD through GraphQL"},
    ),
    (
        "0 2 * * 0",
        "crm.cron.clean_inactive_customers",
        {"timeout": 1800, "description": "Delete customers inactive for a year; archive those with orders"},
    ),
    (
        "0 8 * * *",
        "crm.cron.send_order_reminders",
        {"timeout": 600, "description": "Log a reminder for each order of the last 7 days"},
    ),
    (
        "0 6 * * 1",
        "crm.cron.generate_crm_report",
        {"timeout": 600, "description": "Log the weekly report: customers, orders, revenue"},
    ),
    (
        "30 3 * * *",
        "crm.cron.prune_job_runs",
        {"timeout": 600, "description": "Delete job run history past CRONJOBS_RUN_RETENTION_DAYS"},
    ),
]
# django-crontab's settings may come from the environment too (unset: django-crontab's default).
CRONTAB_SETTINGS_FROM_ENV = (
    "CRONTAB_EXECUTABLE",
    "CRONTAB_PYTHON_EXECUTABLE",
    "CRONTAB_DJANGO_MANAGE_PATH",
    "CRONTAB_DJANGO_SETTINGS_MODULE",
    "CRONTAB_DJANGO_PROJECT_NAME",
    "CRONTAB_COMMAND_PREFIX",
    "CRONTAB_COMMAND_SUFFIX",
    "CRONTAB_COMMENT",
)
globals().update({name: os.environ[name] for name in CRONTAB_SETTINGS_FROM_ENV if os.environ.get(name)})
if os.environ.get("CRONTAB_LOCK_JOBS"):
    CRONTAB_LOCK_JOBS = env_bool("CRONTAB_LOCK_JOBS")
# `crontab add` first runs one installed line as cron would (`--no-preflight` skips it); its hints
# name this file as the place for variables cron's bare environment lacks.
CRONJOBS_PREFLIGHT = True
CRONJOBS_ENV_FILE = str(env_file())
# Run history older than this is deleted by cronjobs.retention.prune_job_runs.
CRONJOBS_RUN_RETENTION_DAYS = env_int("CRONJOBS_RUN_RETENTION_DAYS", 30)
# Execution and many machines (docs/faults.md): seconds between a stopped job's SIGTERM and SIGKILL;
# how often a running run renews its lease (it expires after three missed renewals); the clock
# offset from the database beyond which a host is reported, and beyond which it claims nothing;
# runs one `crontab work` starts at once (unset: twice the CPUs, at least 4).
CRONJOBS_STOP_WAIT = env_float("CRONJOBS_STOP_WAIT", 5.0)
CRONJOBS_LEASE_SECONDS = env_float("CRONJOBS_LEASE_SECONDS", 5.0)
CRONJOBS_CLOCK_SKEW_WARN = env_float("CRONJOBS_CLOCK_SKEW_WARN", 2.0)
CRONJOBS_CLOCK_SKEW_MAX = env_float("CRONJOBS_CLOCK_SKEW_MAX", 300.0)
if os.environ.get("CRONJOBS_MAX_CONCURRENT", "").strip():
    CRONJOBS_MAX_CONCURRENT = env_int("CRONJOBS_MAX_CONCURRENT", 4)


# --- Alerts: logging, mail, monitor pings, metrics (docs/alerts.md) --------------------------------
# Consecutive failed runs of a job before its failure mail (a job's `notify_after` option wins).
CRONJOBS_NOTIFY_AFTER = env_int("CRONJOBS_NOTIFY_AFTER", 1)
# Who gets failure and recovery mails; empty: the addresses in ADMINS.
CRONJOBS_NOTIFY_EMAILS = env_list("CRONJOBS_NOTIFY_EMAILS", "")
# Base of the admin links in mails (the address people open the admin at), and of the fire
# endpoint's URL in `crontab export --format cloud-scheduler|github-actions`.
CRONJOBS_BASE_URL = os.environ.get("CRONJOBS_BASE_URL", "http://127.0.0.1:8000")
# healthchecks.io-style ping URL for every job, "{name}" replaced by the job name (a job's `ping_url` wins).
CRONJOBS_PING_URL_TEMPLATE = os.environ.get("CRONJOBS_PING_URL_TEMPLATE") or None
# Seconds one ping attempt may take; a ping is tried at most twice, so it delays a run by at most 2x this.
CRONJOBS_PING_TIMEOUT = env_int("CRONJOBS_PING_TIMEOUT", 3)
# Bearer token for GET /metrics and /health/cron/'s details; unset: only staff with cronjobs.view_jobrun may read them.
CRONJOBS_METRICS_TOKEN = os.environ.get("CRONJOBS_METRICS_TOKEN") or None
# Outgoing mail (Django's own settings, read from the environment). A bounded timeout, so an SMTP
# server that hangs cannot hold a finished run's process forever.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "webmaster@localhost")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
