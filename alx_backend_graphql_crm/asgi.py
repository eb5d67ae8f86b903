"""ASGI entry point."""

from django.core.asgi import get_asgi_application

from alx_backend_graphql_crm.env import bootstrap

bootstrap()
application = get_asgi_application()
