#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    from alx_backend_graphql_crm.env import load_env_file, one_line_errors

    with one_line_errors():
        load_env_file()  # .env (or CRM_ENV_FILE) under the process environment
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alx_backend_graphql_crm.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
