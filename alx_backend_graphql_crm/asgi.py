"""ASGI entry point."""

from django.core.asgi import get_asgi_application

from alx_backend_graphql_crm.env import bootstrap
from alx_backend_graphql_crm.heap import freeze_startup_heap

bootstrap()
application = get_asgi_application()
freeze_startup_heap()  # full garbage collections then skip what every worker loads once
