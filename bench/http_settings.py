"""Settings of the gunicorn that bench/http.py measures: the project's, plus bench-only baseline views."""

from bench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.http_urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
SECURE_SSL_REDIRECT = False
