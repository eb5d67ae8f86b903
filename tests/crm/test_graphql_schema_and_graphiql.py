"""The committed schema.graphql matches the code; GraphiQL is served with no external asset."""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from graphql import print_schema

from alx_backend_graphql_crm.schema import schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert committed == print_schema(schema.graphql_schema), (
        "schema.graphql is out of date: run `python manage.py graphql_schema "
        "--schema alx_backend_graphql_crm.schema.schema --out schema.graphql` and review the diff"
    )


@pytest.mark.django_db
class TestGraphiQL:
    @pytest.fixture
    def page(self, admin_client):
        response = admin_client.get("/graphql", HTTP_ACCEPT="text/html")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
        return response.content.decode()

    def test_page_references_no_external_host(self, page):
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert len(urls) >= 5
        assert [url for url in urls if urlparse(url).netloc or url.startswith("//")] == []
        assert "cdn" not in page.lower() and "integrity=" not in page

    def test_each_referenced_asset_is_a_vendored_static_file(self, page, settings):
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        for url in urls:
            assert url.startswith(
                settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL
            ), url
            relative = url.split("static/", 1)[1]
            found = finders.find(relative)
            assert found and Path(found).stat().st_size > 0, url
        assert {url.rsplit("/", 1)[1] for url in urls} == {
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "crm-graphiql.js",
        }

    def test_assets_served_by_runserver_in_debug(self, page, settings):
        # runserver serves static files when DEBUG is on through the staticfiles app's handler,
        # which is what this client request goes through with the same finders.
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        settings.DEBUG = True
        handler = StaticFilesHandler(WSGIHandler())
        for url in re.findall(r'(?:src|href)="([^"]+)"', page):
            request = RequestFactory().get(url)
            response = handler.serve(request)
            assert response.status_code == 200, url
            body = b"".join(response.streaming_content)
            assert len(body) > 1000 or url.endswith("crm-graphiql.js"), url

    def test_page_carries_the_csrf_token_and_sets_the_cookie(self, admin_client):
        response = admin_client.get("/graphql", HTTP_ACCEPT="text/html")
        assert 'name="csrfmiddlewaretoken"' in response.content.decode()
        assert "csrftoken" in response.cookies

    def test_page_for_anonymous_browsers_too(self):
        assert Client().get("/graphql", HTTP_ACCEPT="text/html").status_code == 200
