"""URLs of the scheduling engine: health endpoints, Prometheus metrics, the fire endpoint for external schedulers."""

from django.urls import path

from cronjobs import views

urlpatterns = [
    path("health/", views.health_view, name="health"),
    path("health/cron/", views.cron_health_view, name="health-cron"),
    path("metrics", views.metrics_view, name="metrics"),
    path("cron/fire/<str:name>", views.fire_view, name="cron-fire"),
]
