"""Findings 1 and 2: documents that cost the server more than their length, and deep nesting.

Each document is refused by a limit before graphql-core's validation rules run (their
OverlappingFieldsCanBeMergedRule is quadratic: `{ a a a ... }` of 10 KB took 12.7 s), so the
work counted here stays within the limits whatever the document's shape.
"""

import logging

import pytest
from django.conf import settings

from tests.crm.gql_helpers import error_codes, post

pytestmark = pytest.mark.django_db


def refused(client, query):
    status, body = post(client, query)
    assert status == 400 and error_codes(body) == ["query_rejected"], body
    assert "data" not in body
    return body["errors"][0]["message"]


class TestWideDocuments:
    def test_one_name_thousands_of_times_is_refused_while_parsing(self, anonymous, work):
        message = refused(anonymous, "{" + " a" * 4990 + "}")  # finding 1: 12.7 s before the fix
        assert message == "The query has more than 250 tokens; the limit is 250."
        assert work.tokens <= settings.GRAPHQL_MAX_TOKENS + 1 and work.field_pairs == 0

    def test_wide_selection_under_a_list_is_refused_while_parsing(self, anonymous, work):
        message = refused(anonymous, "{allOrders{edges{node{" + " id" * 3300 + "}}}}")  # 8.4 s before the fix
        assert "tokens; the limit is 250" in message
        assert work.tokens <= settings.GRAPHQL_MAX_TOKENS + 1 and work.field_pairs == 0

    def test_repeated_name_is_refused_before_validation(self, anonymous, work):
        message = refused(anonymous, "{" + " hello" * 11 + "}")
        assert message == (
            "'hello' is selected 11 times in one selection set (fragments counted at each use); the limit is 10."
        )
        assert work.field_pairs == 0

    def test_repeats_count_through_fragments(self, anonymous, work):
        fragments = " ".join(f"fragment F{i} on Query {{ hello }}" for i in range(11))
        spreads = " ".join(f"...F{i}" for i in range(11))
        assert "'hello' is selected 11 times" in refused(anonymous, f"{{ {spreads} }} {fragments}")
        assert work.field_pairs == 0

    def test_ten_repeats_are_still_valid_graphql(self, anonymous):
        status, body = post(anonymous, "{" + " hello" * 10 + "}")
        assert status == 200 and body == {"data": {"hello": "Hello, GraphQL!"}}

    def test_field_limit_is_checked_before_validation(self, anonymous, work):
        # 10 + 2**9 fields from a few tokens: refused by the field limit before any pair is compared
        # (the ten `hello` alone would make validation compare 45 pairs).
        fragments = "fragment F0 on Query { hello } " + " ".join(
            f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 10)
        )
        assert "selects 522 fields" in refused(anonymous, "{" + " hello" * 10 + " ...F9 } " + fragments)
        assert work.field_pairs == 0

    def test_introspection_fields_count_towards_the_field_limit(self, anonymous, work):
        fragments = "fragment F0 on __Type { name } " + " ".join(
            f"fragment F{i} on __Type {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 10)
        )
        assert "selects 514 fields" in refused(anonymous, "{ __schema { types { ...F9 } } } " + fragments)
        assert work.field_pairs == 0


class TestDeepDocuments:
    def test_deep_nesting_refused_before_the_parser_recurses_with_one_log_line(self, anonymous, caplog):
        query = "{a" * 2000 + "}" * 2000  # finding 2: a RecursionError and 164 KB of traceback before
        with caplog.at_level(logging.INFO):
            message = refused(anonymous, query)
        assert message == "The query nests brackets more than 32 levels deep; the limit is 32."
        ours = [record for record in caplog.records if record.name.startswith("alx_backend_graphql_crm")]
        assert len(ours) == 1 and ours[0].exc_info is None
        assert ours[0].getMessage() == f"GraphQL document refused: {message}"
        assert len(caplog.text) < 1000

    @pytest.mark.parametrize(
        "query",
        [
            "{ hello(a: " + "[" * 3000 + "]" * 3000 + ") }",  # list values
            "{ hello(a: " + "{a:" * 3000,  # input objects, unbalanced: refused on the way down
            "{ ... on Query " * 600,  # inline fragments
        ],
        ids=["lists", "objects", "inline-fragments"],
    )
    def test_every_kind_of_bracket_counts(self, anonymous, query):
        assert "nests brackets more than 32 levels deep" in refused(anonymous, query)

    def test_nesting_within_the_limit_reaches_the_depth_limit(self, anonymous):
        assert refused(anonymous, "{a" * 30 + "}" * 30) == "The operation is 30 levels deep; the limit is 10."
