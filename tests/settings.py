"""Test settings: the project's settings with a throw-away secret key and a fast hasher."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-insecure-key")

from alx_backend_graphql_crm.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
# A developer's .env must not reach the tests or the processes they start.
os.environ["CRM_ENV_FILE"] = os.devnull
# No collectstatic in tests: the plain storage, whatever DEBUG says.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# `crontab add` tests that want the preflight turn it on.
CRONJOBS_PREFLIGHT = False
