"""Fixtures of the attack tests: an anonymous client, a logged-in clerk, and counters of the server's work."""

from dataclasses import dataclass

import pytest
from django.test import Client
from graphql.language.lexer import Lexer
from graphql.validation.rules import overlapping_fields_can_be_merged

from alx_backend_graphql_crm.api import documents

# The CRM tests' clerk and the client logged in as the clerk (tests/crm/conftest.py), here too.
from tests.crm.conftest import clerk, client  # noqa: F401


@pytest.fixture(autouse=True)
def fresh_document_cache(monkeypatch):
    """Each test meets documents as a first-time attacker does: not yet parsed, measured or validated."""
    monkeypatch.setattr(documents, "DOCUMENTS", documents.DocumentCache())


@pytest.fixture
def anonymous():
    """No session, no token. Django's test client skips CSRF checks unless asked: see ``program``."""
    return Client()


@pytest.fixture
def program():
    """An anonymous client with CSRF checks enforced, as a real server does for a script or an attacker."""
    return Client(enforce_csrf_checks=True)


@dataclass
class Work:
    """What a request made the server do, counted instead of timed (timing tests are flaky)."""

    tokens: int = 0  # tokens lexed: the parser's work
    field_pairs: int = 0  # pairs of fields compared by OverlappingFieldsCanBeMergedRule (quadratic)

    def reset(self):
        self.tokens = self.field_pairs = 0


@pytest.fixture
def work(monkeypatch):
    counters = Work()
    advance, find_conflict = Lexer.advance, overlapping_fields_can_be_merged.find_conflict

    def counting_advance(self):
        counters.tokens += 1
        return advance(self)

    def counting_find_conflict(*args, **kwargs):
        counters.field_pairs += 1
        return find_conflict(*args, **kwargs)

    monkeypatch.setattr(Lexer, "advance", counting_advance)
    monkeypatch.setattr(overlapping_fields_can_be_merged, "find_conflict", counting_find_conflict)
    return counters
