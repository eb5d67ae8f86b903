"""Figure 8: the slowest hostile document just inside the size limits, through the view, against `{ hello }`.

Self-contained: ``figure_8(ctx)`` is the whole figure; ``hostile_documents()`` is its corpus, shaped
by the limits in settings (tokens, nesting, depth, fields, aliases, repeats) so each document sits
just inside them, or just past one where that costs the server the most (the token limit is met
after reading the whole budget). tests/security/test_hostile_documents.py checks the same corpus.
"""

from __future__ import annotations

import itertools
import json

from django.conf import settings
from graphql.language import Lexer, Source, TokenKind


def _tokens(document: str) -> int:
    lexer, count = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def _fit(make, most: int) -> str:
    """``make(n)`` for the largest n <= ``most`` whose document stays within GRAPHQL_MAX_TOKENS."""
    low, high = 1, most
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _tokens(make(middle)) <= settings.GRAPHQL_MAX_TOKENS else (low, middle - 1)
    return make(low)


def _spread_fragments(count: int) -> str:
    spreads = " ".join(f"...F{i}" for i in range(count))
    return f"{{ {spreads} }} " + " ".join(f"fragment F{i} on Query {{ a{i} }}" for i in range(count))


def _fragment_bomb(levels: int) -> str:
    fragments = "fragment F0 on Query { hello } " + " ".join(
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    )
    return f"{{ ...F{levels} }} {fragments}"


def _aliased(count: int) -> str:
    node = "id orderDate totalAmount customer { id name email } products { id name price }"
    return (
        "{ " + " ".join(f"o{i}: allOrders(first: 100) {{ edges {{ node {{ {node} }} }} }}" for i in range(count)) + " }"
    )


def hostile_documents() -> dict[str, str]:
    """Name -> document: each within every limit (one is refused by the token limit after reading it all)."""
    tokens, fields = settings.GRAPHQL_MAX_TOKENS, settings.GRAPHQL_MAX_FIELDS
    aliases, repeats, nesting = settings.GRAPHQL_MAX_ALIASES, settings.GRAPHQL_MAX_REPEATS, settings.GRAPHQL_MAX_NESTING
    chars = settings.GRAPHQL_MAX_QUERY_CHARS - 16  # room for the comment that makes each request new
    documents = {
        # Refused by the token limit after reading the whole token budget.
        "tokens: ` a` to the size limit": "{" + " a" * ((chars - 2) // 2) + "}",
        # Within every limit: validation then runs in full.
        "wide: distinct unknown fields": _fit(lambda n: "{ " + " ".join(f"a{i}" for i in range(n)) + " }", fields),
        "wide: each name repeated to the limit": _fit(
            lambda n: "{ " + " ".join(f"a{i % (fields // repeats)}" for i in range(n)) + " }", fields
        ),
        "aliased: list fields": _fit(_aliased, aliases),
        "fragment fan-out: distinct fragments": _fit(_spread_fragments, tokens),
        "fragment bomb: doubling to the field limit": _fragment_bomb(fields.bit_length() - 1),
        "deep: brackets to the nesting limit": "{ hello(a: " + "[" * (nesting - 2) + "1" + "]" * (nesting - 2) + ") }",
        "huge literal: one string": '{ hello(a: "' + "x" * (chars - 20) + '") }',
        "variables: unused definitions": _fit(
            lambda n: "query(" + " ".join(f"$v{i}: Int" for i in range(n)) + ") { hello }", tokens
        ),
        "operations: many named": _fit(lambda n: " ".join(f"query Q{i} {{ hello }}" for i in range(n)), tokens),
        "directives: repeated": _fit(lambda n: "{ hello " + "@skip(if: false) " * n + "}", tokens),
    }
    return {name: document for name, document in documents.items() if len(document) <= chars}


CREATE_ORDER = "mutation($ids: [ID!]!) { createOrder(input: {customerId: 1, productIds: $ids}) { errors } }"


def hostile_variables() -> dict[str, tuple[str, dict]]:
    """Name -> (document, variables): an anonymous createOrder whose variables sit at or just past their limits.

    Issue 24, F5: graphql-core coerced every item of a list variable before any permission check.
    """
    values, depth = settings.GRAPHQL_MAX_VARIABLE_VALUES, settings.GRAPHQL_MAX_VARIABLE_DEPTH
    longest, body = settings.GRAPHQL_MAX_VARIABLE_STRING, settings.GRAPHQL_MAX_BODY_BYTES
    room = body - len(CREATE_ORDER) - 100  # the JSON around the variables
    nested: list = [1]
    for _ in range(depth - 2):  # the variables object and `ids` itself are two levels
        nested = [nested]
    return {
        # Refused by the value count, after decoding a body just under the body limit.
        "variables: integers to the body limit": (CREATE_ORDER, {"ids": list(range(room // 7))}),
        # Within every limit: refused as anonymous before coercion.
        "variables: the most values allowed": (CREATE_ORDER, {"ids": list(range(values - 1))}),
        "variables: strings at the length limit to the body limit": (
            CREATE_ORDER,
            {"ids": ["1" * longest] * (room // (longest + 3))},
        ),
        "variables: lists nested to the depth limit": (CREATE_ORDER, {"ids": [nested] * min(values // depth, 500)}),
    }


def _post(client, document: str, variables: dict | None = None):
    # secure: as behind the TLS proxy production runs behind (DEBUG off redirects plain HTTP)
    body = {"query": document, **({"variables": variables} if variables is not None else {})}
    return client.post("/graphql", json.dumps(body), content_type="application/json", secure=True)


def _answer(client, document: str, variables: dict | None = None) -> tuple[int, str]:
    """(status, "data" or "errors"): what the view answered, to be sure the figure times the view."""
    response = _post(client, document, variables)
    body = response.json() if response["Content-Type"] == "application/json" else {}
    return response.status_code, "errors" if body.get("errors") else "data" if "data" in body else "not JSON"


def figure_8(ctx):
    from django.test import Client

    from bench.worker import Figure, median_times

    fig = Figure("8", "Hostile documents just inside the limits, through the view", "slower", 20)
    fig.baseline_label = "{ hello } through the same view, each sent new"
    client = Client(SERVER_NAME="localhost")  # anonymous, as an attacker: no session, no token
    requests = {name: (document, None) for name, document in hostile_documents().items()} | hostile_variables()
    documents = {name: document for name, (document, _) in requests.items()}
    answers = {name: _answer(client, *request) for name, request in {"hello": ("{ hello }", None), **requests}.items()}
    if answers.pop("hello") != (200, "data") or any(answer[0] >= 500 for answer in answers.values()):
        fig.status, fig.note = "error", f"not the view's answers: {answers}"
        return fig
    # An attacker sends each document new (a comment is enough), so the per-worker document cache
    # (api/documents.py) never helps them; `{ hello }` is timed new too (like for like: parsed and
    # validated each time) and, in the note, as a client repeats it (served from the cache).
    fresh = itertools.count()
    functions = [lambda: _post(client, "{ hello }"), lambda: _post(client, f"{{ hello }}\n#{next(fresh)}")] + [
        (lambda document=document, variables=variables: _post(client, f"{document}\n#{next(fresh)}", variables))
        for document, variables in requests.values()
    ]
    runs = max(5, ctx.runs)
    hello, hello_new, *times = median_times(functions, runs=runs)
    slowest = max(range(len(times)), key=times.__getitem__)
    fig.ours, fig.baseline, fig.runs = times[slowest], hello_new, runs
    fig.ours_label = f"slowest of {len(documents)}, each sent new: {list(documents)[slowest]}"
    fig.extra = {name: round(seconds * 1000, 2) for name, seconds in zip(documents, times, strict=True)}
    fig.note = (
        f"`{{ hello }}` repeated, served from the document cache: {hello * 1000:.1f} ms, "
        f"against which the slowest is {times[slowest] / hello:.1f}x"
    )
    return fig
