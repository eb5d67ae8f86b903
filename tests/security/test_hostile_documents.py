"""Hostile documents of every shape through the view: no 5xx, no internal error, bounded work.

Bounded work is asserted with counters (tokens lexed, field pairs compared by graphql-core's
quadratic OverlappingFieldsCanBeMergedRule), never with a clock: whatever the document, the
counts stay under figures fixed by the limits. The same corpus `make bench` times (figure 8)
is checked here too.
"""

import json
import logging

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bench.hostile import hostile_documents

pytestmark = pytest.mark.django_db

NAMES = ["a", "hello", "__typename", "id", "allOrders", "allCustomers", "__schema", "totalCount"]


def deep(kind: str, levels: int) -> str:
    if kind == "selections":
        return "{a" * levels + "}" * levels
    if kind == "lists":
        return "{ hello(a: " + "[" * levels + "1" + "]" * levels + ") }"
    if kind == "objects":
        return "{ hello(a: " + "{a: " * levels + "1" + "}" * levels + ") }"
    return "{ " + "... on Query { " * levels + "hello" + " }" * levels + " }"


def wide(names: list[str], aliased: bool) -> str:
    return "{ " + " ".join(f"x{i}: {name}" if aliased else name for i, name in enumerate(names)) + " }"


def fan_out(fragments: int, spreads: int, body: str) -> str:
    definitions = " ".join(f"fragment F{i} on Query {{ {body} }}" for i in range(fragments))
    return "{ " + " ".join(f"...F{i % fragments}" for i in range(spreads)) + " } " + definitions


def bomb(levels: int, width: int, leaf: str) -> str:
    fragments = f"fragment F0 on Query {{ {leaf} }} " + " ".join(
        f"fragment F{i} on Query {{ {' '.join([f'...F{i - 1}'] * width)} }}" for i in range(1, levels + 1)
    )
    return f"{{ ...F{levels} }} {fragments}"


def literal(kind: str, size: int) -> str:
    value = {
        "string": '"' + "x" * size + '"',
        "block": '"""' + "y\n" * (size // 2) + '"""',
        "number": "9" * size,
        "list": "[" + " ".join(["1"] * (size // 2)) + "]",
    }[kind]
    return f"{{ hello(a: {value}) }}"


hostile = st.one_of(
    st.builds(deep, st.sampled_from(["selections", "lists", "objects", "fragments"]), st.integers(1, 3000)),
    st.builds(wide, st.lists(st.sampled_from(NAMES), min_size=1, max_size=5000), st.booleans()),
    st.builds(
        fan_out,
        st.integers(1, 600),
        st.integers(1, 1200),
        st.sampled_from(["hello", "a", "__typename hello", "allOrders { totalCount }"]),
    ),
    st.builds(bomb, st.integers(1, 40), st.integers(2, 4), st.sampled_from(["hello", "a: hello", "__typename"])),
    st.builds(literal, st.sampled_from(["string", "block", "number", "list"]), st.integers(1, 12_000)),
)


def check(client, work, document: str) -> None:
    work.reset()
    response = client.post("/graphql", json.dumps({"query": document}), content_type="application/json")
    assert response.status_code < 500, (response.status_code, document[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    codes = [error.get("extensions", {}).get("code") for error in body.get("errors", [])]
    assert "internal_error" not in codes, (body, document[:300])
    # Bounded work: the parser stops after the token budget (plus the token past it and EOF) ...
    assert work.tokens <= settings.GRAPHQL_MAX_TOKENS + 2, (work, document[:300])
    # ... and the quadratic rule compares at most `repeats` pairs per field of the budget.
    assert work.field_pairs <= settings.GRAPHQL_MAX_REPEATS * settings.GRAPHQL_MAX_TOKENS, (work, document[:300])
    assert len(response.content) < 20_000  # at most MAX_VALIDATION_ERRORS short errors


def test_generated_hostile_documents(anonymous, work, caplog):
    @hypothesis_settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(document=hostile)
    def send(document):
        check(anonymous, work, document)

    with caplog.at_level(logging.ERROR):
        send()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("name", list(hostile_documents()))
def test_benchmark_corpus(anonymous, work, name):
    check(anonymous, work, hostile_documents()[name])
