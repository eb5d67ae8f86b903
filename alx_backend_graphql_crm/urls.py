"""URL routes: admin, GraphQL, health."""

from django.contrib import admin
from django.urls import include, path

from alx_backend_graphql_crm.api.views import ApiGraphQLView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The view checks CSRF itself, for session-authenticated requests only, and answers JSON;
    # it sets the CSRF cookie GraphiQL sends back.
    path("graphql", ApiGraphQLView.as_view(graphiql=True), name="graphql"),
    path("", include("cronjobs.urls")),
]
