"""URL routes: admin, GraphQL, health."""

from django.contrib import admin
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie
from graphene_django.views import GraphQLView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("graphql", ensure_csrf_cookie(GraphQLView.as_view(graphiql=True))),
]
