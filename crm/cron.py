"""The CRONJOBS targets: each job is a few lines over crm.services, the GraphQL client and the logs."""

from datetime import timedelta

from django.db import connection
from graphql_relay import from_global_id

from crm import graphql_client, joblog, services

RESTOCK_MUTATION = """
mutation { updateLowStockProducts { success message updatedProducts { id name stock } } }
"""
RECENT_ORDERS_QUERY = """
query RecentOrders($since: DateTime!, $after: String) {
  allOrders(filter: {orderDateGte: $since}, orderBy: "orderDate", first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id orderDate customer { email } } }
  }
}
"""
REPORT_QUERY = "query { totalCustomers totalOrders totalRevenue }"


def log_crm_heartbeat() -> str:
    """Check the database and the GraphQL endpoint, then log ``DD/MM/YYYY-HH:MM:SS CRM is alive``."""
    when = joblog.local_now().strftime("%d/%m/%Y-%H:%M:%S")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # one line per check in the log
        joblog.append_line(joblog.HEARTBEAT_LOG, f"{when} CRM check failed: database: {reason}")
        raise
    try:
        answer = graphql_client.execute("{ hello }").get("hello")
        if not answer:
            raise graphql_client.GraphQLClientError("hello returned nothing")
    except Exception as exc:
        joblog.append_line(joblog.HEARTBEAT_LOG, f"{when} CRM check failed: graphql: {exc}")
        raise
    joblog.append_line(joblog.HEARTBEAT_LOG, f"{when} CRM is alive")
    return "CRM is alive"


def update_low_stock() -> str:
    """Restock through the ``updateLowStockProducts`` mutation; one log line per product."""
    payload = graphql_client.execute(RESTOCK_MUTATION)["updateLowStockProducts"]
    if not payload["success"]:
        raise graphql_client.GraphQLClientError(f"updateLowStockProducts failed: {payload['message']}")
    now = joblog.stamp()
    products = payload["updatedProducts"]
    lines = [f"{now} - {p['name']}: new stock {p['stock']}" for p in products] or [f"{now} - No low-stock products"]
    done = f"restocked {len(products)} products"
    _log_after_effect(joblog.LOW_STOCK_LOG, lines, done)
    return done


def clean_inactive_customers(days: int = 365) -> str:
    """Delete inactive customers who never ordered; archive those with order history."""
    result = services.clean_inactive_customers(days=days)
    now = joblog.stamp()
    lines = [f"{now} - Deleted {result.deleted} inactive customers"]
    if result.archived:
        lines.append(f"{now} - Archived {result.archived} inactive customers with order history")
    done = f"deleted {result.deleted}, archived {result.archived}"
    _log_after_effect(joblog.CLEANUP_LOG, lines, done)
    return done


def send_order_reminders() -> str:
    """Log one reminder line per order of the last 7 days, read through GraphQL."""
    since = joblog.local_now() - timedelta(days=7)
    orders = _all_pages(RECENT_ORDERS_QUERY, {"since": since.isoformat()}, "allOrders")
    now = joblog.stamp()
    lines = [
        f"{now} - Order ID: {from_global_id(order['id'])[1]}, Customer email: {order['customer']['email']}"
        for order in orders
    ]
    if lines:
        joblog.append_lines(joblog.REMINDERS_LOG, lines)
    return f"{len(lines)} reminders"


def generate_crm_report() -> str:
    """Log ``Report: X customers, Y orders, Z revenue`` from the GraphQL totals."""
    data = graphql_client.execute(REPORT_QUERY)
    line = f"Report: {data['totalCustomers']} customers, {data['totalOrders']} orders, {data['totalRevenue']} revenue"
    joblog.append_line(joblog.REPORT_LOG, f"{joblog.stamp()} - {line}")
    return line


def prune_job_runs() -> str:
    """Delete run history past its retention (the engine's setting)."""
    from cronjobs.retention import prune_job_runs as prune

    return prune()


class LogNotWritten(joblog.JobLogError):
    """The job's work is done and committed, but its log line could not be written."""


def _log_after_effect(filename: str, lines: list[str], done: str) -> None:
    # The change is committed by now: a failed log must not make the run look as if nothing happened.
    try:
        joblog.append_lines(filename, lines)
    except joblog.JobLogError as exc:
        raise LogNotWritten(f"{done}; log not written: {exc}") from exc


def _all_pages(document: str, variables: dict, field: str) -> list[dict]:
    nodes, after = [], None
    while True:
        connection_ = graphql_client.execute(document, {**variables, "after": after})[field]
        nodes.extend(edge["node"] for edge in connection_["edges"])
        if not connection_["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection_["pageInfo"]["endCursor"]
