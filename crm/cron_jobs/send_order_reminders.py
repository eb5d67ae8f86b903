#!/usr/bin/env python
"""Plain-crontab route for order reminders: queries the last 7 days of orders over HTTP with gql.

Runs the same code as the CRONJOBS job, forced onto the HTTP route: CRM_GRAPHQL_URL defaults
to http://localhost:8000/graphql and CRM_API_TOKEN (from `manage.py create_api_token`) is sent
as a bearer token. Lines go to order_reminders_log.txt in CRM_LOG_DIR.
"""

import os
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def main() -> int:
    sys.path.insert(0, str(PROJECT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alx_backend_graphql_crm.settings")
    os.environ.setdefault("CRM_GRAPHQL_URL", "http://localhost:8000/graphql")
    import django

    django.setup()
    from crm.cron import send_order_reminders
    from crm.graphql_client import GraphQLClientError
    from crm.joblog import JobLogError

    try:
        send_order_reminders()
    except (GraphQLClientError, JobLogError) as exc:
        print(f"send_order_reminders: {exc}", file=sys.stderr)
        return 1
    print("Order reminders processed!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
