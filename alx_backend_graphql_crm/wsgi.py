"""WSGI entry point (gunicorn in production: see docs/deploy.md)."""

from django.core.wsgi import get_wsgi_application

from alx_backend_graphql_crm.env import bootstrap

bootstrap()
application = get_wsgi_application()
