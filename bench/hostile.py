"""Figure 8: the slowest hostile document just inside the size limits, through the view, against `{ hello }`.

Self-contained: ``figure_8(ctx)`` is the whole figure; ``hostile_documents()`` is its corpus, shaped
by the limits in settings (tokens, nesting, depth, fields, aliases, repeats) so each document sits
just inside them, or just past one where that costs the server the most (the token limit is met
after reading the whole budget).
"""

from __future__ import annotations

import json

from django.conf import settings


def _spread_fragments(count: int) -> str:
    spreads = " ".join(f"...F{i}" for i in range(count))
    return f"{{ {spreads} }} " + " ".join(f"fragment F{i} on Query {{ a{i} }}" for i in range(count))


def _fragment_bomb(levels: int) -> str:
    fragments = "fragment F0 on Query { hello } " + " ".join(
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    )
    return f"{{ ...F{levels} }} {fragments}"


def hostile_documents() -> dict[str, str]:
    """Name -> document. Each stays within GRAPHQL_MAX_QUERY_CHARS; most within every other limit."""
    tokens, fields = settings.GRAPHQL_MAX_TOKENS, settings.GRAPHQL_MAX_FIELDS
    aliases, repeats, nesting = settings.GRAPHQL_MAX_ALIASES, settings.GRAPHQL_MAX_REPEATS, settings.GRAPHQL_MAX_NESTING
    chars = settings.GRAPHQL_MAX_QUERY_CHARS
    node = "id orderDate totalAmount customer { id name email } products { id name price }"
    documents = {
        # Refused by the token limit after reading the whole token budget.
        "tokens: ` a` to the size limit": "{" + " a" * ((chars - 2) // 2) + "}",
        # Within every limit: validation then runs in full.
        "wide: distinct unknown fields": "{ " + " ".join(f"a{i}" for i in range(min(fields, tokens - 2))) + " }",
        "wide: each name repeated to the limit": "{ "
        + " ".join(f"a{i % (fields // repeats)}" for i in range(min(fields, tokens - 2)))
        + " }",
        "aliased: list fields": "{ "
        + " ".join(f"o{i}: allOrders(first: 100) {{ edges {{ node {{ {node} }} }} }}" for i in range(aliases))
        + " }",
        "fragment fan-out: distinct fragments": _spread_fragments((tokens - 2) // 9),
        "fragment bomb: doubling to the field limit": _fragment_bomb(fields.bit_length() - 1),
        "deep: brackets to the nesting limit": "{ hello(a: " + "[" * (nesting - 2) + "1" + "]" * (nesting - 2) + ") }",
        "huge literal: one string": '{ hello(a: "' + "x" * (chars - 20) + '") }',
        "variables: unused definitions": "query("
        + " ".join(f"$v{i}: Int" for i in range((tokens - 10) // 4))
        + ") { hello }",
        "operations: many named": " ".join(f"query Q{i} {{ hello }}" for i in range((tokens - 1) // 5)),
        "directives: repeated": "{ hello " + "@skip(if: false) " * ((tokens - 4) // 7) + "}",
    }
    return {name: document for name, document in documents.items() if len(document) <= chars}


def _post(client, document: str):
    return client.post("/graphql", json.dumps({"query": document}), content_type="application/json")


def figure_8(ctx):
    from django.test import Client

    from bench.worker import Figure, median_times

    fig = Figure("8", "Hostile documents just inside the limits, through the view", "slower", 20)
    fig.baseline_label = "{ hello } through the same view"
    client = Client()  # anonymous, as an attacker: no session, no token
    documents = hostile_documents()
    statuses = {name: _post(client, document).status_code for name, document in documents.items()}
    if any(status >= 500 for status in statuses.values()):
        fig.status, fig.note = "error", f"a 5xx answer: {statuses}"
        return fig
    functions = [lambda: _post(client, "{ hello }")] + [
        (lambda document=document: _post(client, document)) for document in documents.values()
    ]
    runs = max(5, ctx.runs)
    hello, *times = median_times(functions, runs=runs)
    slowest = max(range(len(times)), key=times.__getitem__)
    fig.ours, fig.baseline, fig.runs = times[slowest], hello, runs
    fig.ours_label = f"slowest of {len(documents)}: {list(documents)[slowest]}"
    fig.extra = {name: round(seconds * 1000, 2) for name, seconds in zip(documents, times, strict=True)}
    return fig
