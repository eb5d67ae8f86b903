"""Users and clients of the CRM tests."""

import pytest

from tests.crm.gql_helpers import ALL_CRM_PERMISSIONS, logged_in, user_with


@pytest.fixture
def clerk():
    """A user holding every crm view/add/change/delete permission."""
    return user_with(*ALL_CRM_PERMISSIONS, username="clerk")


@pytest.fixture
def client(clerk):
    """A test client logged in as the clerk (pytest-django's `client` is anonymous)."""
    return logged_in(clerk)
