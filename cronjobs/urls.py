"""URLs of the scheduling engine: health endpoints and Prometheus metrics."""

from django.urls import path

from cronjobs import views

urlpatterns = [
    path("health/", views.health_view, name="health"),
    path("health/cron/", views.cron_health_view, name="health-cron"),
    path("metrics", views.metrics_view, name="metrics"),
]
