"""ASGI entry point: what `make serve` runs (gunicorn.conf.py). The WSGI app behind an event loop: server.py."""

from alx_backend_graphql_crm.server import ThreadedWSGI
from alx_backend_graphql_crm.wsgi import application as wsgi_application

application = ThreadedWSGI(wsgi_application)
