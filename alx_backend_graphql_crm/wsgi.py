"""WSGI entry point (gunicorn in production: see docs/deploy.md)."""

from django.core.wsgi import get_wsgi_application

from alx_backend_graphql_crm.env import bootstrap
from alx_backend_graphql_crm.heap import freeze_startup_heap

bootstrap()
application = get_wsgi_application()
freeze_startup_heap()  # full garbage collections then skip what every worker loads once
