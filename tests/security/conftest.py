"""The CRM tests' clerk and their logged-in client (tests/crm/conftest.py), here too."""

from tests.crm.conftest import clerk, client  # noqa: F401
