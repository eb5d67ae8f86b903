"""The product's URLs plus the two baselines bench/http.py measures /graphql against (never in the product)."""

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from alx_backend_graphql_crm import urls as product_urls
from bench.worker import orders_page


@csrf_exempt
def hello(request):
    """`{ hello }`'s answer from a plain JsonResponse."""
    return JsonResponse({"data": {"hello": "Hello, GraphQL!"}})


@csrf_exempt
def orders(request):
    """allOrders(first: 100)'s answer from the same ORM query, as a plain Django view (same auth middleware)."""
    if not request.user.has_perm("crm.view_order"):
        return JsonResponse({"errors": [{"message": "permission denied"}]}, status=403)
    return JsonResponse({"data": orders_page("Order")})


# The product's patterns themselves, not include()d: /graphql resolves as it does in the product.
urlpatterns = [path("bench/hello", hello), path("bench/orders", orders), *product_urls.urlpatterns]
