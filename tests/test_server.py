"""alx_backend_graphql_crm/server.py: the WSGI app behind uvicorn's loop answers as h11 needs (no process)."""

import asyncio

import pytest
from django.core.wsgi import get_wsgi_application

from alx_backend_graphql_crm.server import ThreadedWSGI

pytestmark = pytest.mark.django_db(transaction=True)


def call(path: str) -> list[dict]:
    app, sent = ThreadedWSGI(get_wsgi_application(), threads=1), []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "http_version": "1.1",
        "headers": [(b"host", b"localhost")],
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_set_cookie_values_have_no_leading_space():
    start = call("/admin/login/")[0]  # Django's WSGI handler writes " csrftoken=..."; h11 refused it (a 500)
    cookies = [value for name, value in start["headers"] if name == b"set-cookie"]
    assert start["status"] == 200 and cookies and all(not value.startswith(b" ") for value in cookies)
