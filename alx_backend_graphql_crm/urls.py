"""URL routes: admin, GraphQL, health."""

from django.contrib import admin
from django.urls import include, path

from alx_backend_graphql_crm.api.views import ApiGraphQLView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Not csrf_exempt: session requests need the CSRF token; bearer-token requests are exempted
    # by crm.auth.BearerTokenMiddleware. The view sets the CSRF cookie GraphiQL sends back.
    path("graphql", ApiGraphQLView.as_view(graphiql=True), name="graphql"),
    path("", include("cronjobs.urls")),
]
