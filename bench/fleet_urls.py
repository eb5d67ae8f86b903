"""The product's URLs plus the baselines of bench/fleet.py's read-path figures (never in the product)."""

from django.urls import path

from alx_backend_graphql_crm import urls as product_urls
from bench.fleet import health_baseline_view, metrics_baseline_view

urlpatterns = [
    path("bench/fleet/health", health_baseline_view),
    path("bench/fleet/metrics", metrics_baseline_view),
    *product_urls.urlpatterns,
]
