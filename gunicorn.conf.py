"""gunicorn's settings for `make serve` and the systemd units (deploy/systemd/): from the environment and .env.

HOST (default 127.0.0.1), PORT (8000), WEB_CONCURRENCY (workers, default 2 x CPUs + 1). Access log on stdout.
"""

import multiprocessing
import os

from alx_backend_graphql_crm.env import bootstrap

# The env file and the settings before any worker starts: a missing DJANGO_SECRET_KEY stops gunicorn
# here with one line, instead of each worker failing to boot.
bootstrap()

bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count() + 1)
accesslog = "-"
# Behind a TLS proxy on another host, set FORWARDED_ALLOW_IPS to its address (gunicorn reads it itself).
