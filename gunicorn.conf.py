"""gunicorn's settings for `make serve` and the systemd units (deploy/systemd/): from the environment and .env.

HOST (default 127.0.0.1), PORT (8000), WEB_CONCURRENCY (workers, default 2 x CPUs + 1), WEB_THREADS (Django
threads a worker, default 4). Access log on stdout.

The workers are uvicorn's event loop (alx_backend_graphql_crm/server.py), not gunicorn's sync workers: a
client that sends its request slowly holds a connection, never a worker, so the port survives slow clients
without a proxy in front (docs/security.md, "Slow clients").
"""

import multiprocessing
import os

from alx_backend_graphql_crm.env import bootstrap

# The env file and the settings before any worker starts: a missing DJANGO_SECRET_KEY stops gunicorn
# here with one line, instead of each worker failing to boot.
bootstrap()

wsgi_app = "alx_backend_graphql_crm.asgi:application"
worker_class = "alx_backend_graphql_crm.server.Worker"
bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count() + 1)
threads = int(os.environ.get("WEB_THREADS") or 4)  # Django's threads in each worker (server.ThreadedWSGI)
accesslog = "-"
# Behind a TLS proxy on another host, set FORWARDED_ALLOW_IPS to its address (gunicorn reads it itself).
