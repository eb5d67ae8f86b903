"""api/execution.py completes lists of flat objects in one loop, with graphql-core's results to the byte.

Every case is executed twice, by graphql-core's ExecutionContext and by ours, and the two answers
(data, and errors with their paths) and what the resolvers saw are compared.
"""

import pytest
from graphql import (
    ExecutionContext as CoreExecutionContext,
)
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    execute,
    parse,
)
from hypothesis import given
from hypothesis import strategies as st

from alx_backend_graphql_crm.api.execution import ExecutionContext
from crm import graphql_client
from tests.crm.gql_helpers import ok
from tests.factories import ProductFactory


class Boom(Exception):
    pass


RAISE = "<raise>"  # a cell whose resolver raises
SEEN: list = []  # (field, path, parent type) of every resolver call


def cell(row, info, times=1):
    SEEN.append((info.field_name, tuple(info.path.as_list()), info.parent_type.name, info.return_type))
    value = row.get(info.field_name)
    if value == RAISE:
        raise Boom(f"no {info.field_name}")
    return value * times if isinstance(value, int) and not isinstance(value, bool) else value


Color = GraphQLEnumType("Color", {"RED": "red", "BLUE": "blue"})
FIELDS = {
    "count": GraphQLField(GraphQLNonNull(GraphQLInt), resolve=cell),
    "label": GraphQLField(GraphQLString, resolve=cell),
    "ref": GraphQLField(GraphQLNonNull(GraphQLID), resolve=cell),
    "color": GraphQLField(Color, resolve=cell),
    "size": GraphQLField(GraphQLInt, args={"times": GraphQLArgument(GraphQLInt)}, resolve=cell),
}
Item = GraphQLObjectType("Item", FIELDS)
# Only dicts that name their kind are Typed: is_type_of says no to the others.
Typed = GraphQLObjectType("Typed", FIELDS, is_type_of=lambda row, info: row.get("kind") == "typed")
Outer = GraphQLObjectType("Outer", {"inner": GraphQLField(Item, resolve=lambda row, info: row), **FIELDS})
ROWS: list = []
SCHEMA = GraphQLSchema(
    GraphQLObjectType(
        "Query",
        {
            "items": GraphQLField(GraphQLList(GraphQLNonNull(Item)), resolve=lambda *_: ROWS),
            "maybe": GraphQLField(GraphQLList(Item), resolve=lambda *_: iter(ROWS)),
            "strict": GraphQLField(GraphQLNonNull(GraphQLList(GraphQLNonNull(Item))), resolve=lambda *_: tuple(ROWS)),
            "typed": GraphQLField(GraphQLList(Typed), resolve=lambda *_: ROWS),
            "outer": GraphQLField(GraphQLList(Outer), resolve=lambda *_: ROWS),
        },
    )
)
DOCUMENT = parse(
    """query($times: Int) {
      items { count label ref color n: size(times: $times) __typename }
      maybe { label ref color size(times: 3) count }
      strict { ref count }
      typed { count label }
      outer { label inner { ref label } }
    }"""
)


def run(execution_context_class, rows, variables=None, middleware=None):
    ROWS[:] = rows
    SEEN.clear()
    result = execute(
        SCHEMA,
        DOCUMENT,
        variable_values=variables,
        execution_context_class=execution_context_class,
        middleware=middleware,
    )
    return result.formatted, list(SEEN)


def both(rows, variables=None, middleware=None):
    ours = run(ExecutionContext, rows, variables, middleware)
    core = run(CoreExecutionContext, rows, variables, middleware)
    return ours, core


def row(i, **changes):
    return {"count": i, "label": f"item {i}", "ref": i, "color": "red" if i % 2 else "blue", "size": i, **changes}


ANY_VALUE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**33), max_value=2**33),
    st.text(max_size=3),
    st.sampled_from(["red", "blue", "green", RAISE]),
    st.booleans(),
    st.floats(allow_nan=True),
    st.builds(ValueError, st.text(max_size=3)),
)
ROW = st.fixed_dictionaries(
    {name: ANY_VALUE for name in FIELDS}, optional={"kind": st.sampled_from(["typed", "other"])}
)


def test_plain_rows_answer_and_are_resolved_exactly_as_graphql_core_does():
    ours, core = both([row(i, kind="typed") for i in range(20)], {"times": 2})
    assert ours == core
    assert "errors" not in ours[0]
    assert ours[0]["data"]["items"][3] == {
        "count": 3,
        "label": "item 3",
        "ref": "3",
        "color": "RED",
        "n": 6,
        "__typename": "Item",
    }
    # Same resolver calls, in the same order, with the same path, field and types in their info.
    assert ("count", ("items", 3, "count"), "Item", FIELDS["count"].type) in ours[1]


@pytest.mark.parametrize(
    "bad",
    [
        {"count": None},  # null where null is not allowed: the item, then the list, are null
        {"count": RAISE},  # a resolver that raises
        {"label": RAISE},  # ... on a nullable field: null and an error
        {"count": "many"},  # a value Int cannot serialise
        {"color": "green"},  # an enum value that does not exist
        {"label": ValueError("returned, not raised")},
        {"count": 2**31},  # beyond GraphQL's Int
        {"kind": "other"},  # is_type_of says no
    ],
)
def test_a_bad_item_anywhere_is_reported_as_graphql_core_reports_it(bad):
    rows = [row(i, kind="typed") for i in range(10)]
    rows[6] = {**rows[6], **bad}
    ours, core = both(rows)
    assert ours[0] == core[0]
    assert ours[0]["errors"]
    assert all(error["path"][1] == 6 for error in ours[0]["errors"])
    # Every resolver call graphql-core makes, in its order; the item it stopped at may be resolved twice.
    assert list(dict.fromkeys(ours[1])) == core[1]
    assert len(ours[1]) - len(core[1]) < len(FIELDS) * 4


@given(st.lists(ROW, max_size=6), st.one_of(st.none(), st.integers(min_value=-3, max_value=3)))
def test_any_rows_answer_as_graphql_core_answers(rows, times):
    ours, core = both(rows, {"times": times})
    assert ours[0] == core[0]


def test_field_middleware_sees_each_field_once_as_with_graphql_core():
    calls = []

    def middleware(next_, root, info, **args):
        calls.append(tuple(info.path.as_list()))
        return next_(root, info, **args)

    rows = [row(i) for i in range(10)]
    rows[8]["count"] = RAISE  # a failure late in the list: still one call per field
    ours = run(ExecutionContext, rows, middleware=[middleware])
    ours_calls, calls[:] = list(calls), []
    core = run(CoreExecutionContext, rows, middleware=[middleware])
    assert ours == core
    assert ours_calls == calls
    assert len(set(calls)) == len(calls)


def test_lists_of_flat_objects_take_one_loop_and_others_graphql_cores(monkeypatch):
    loops = []
    real = ExecutionContext._complete_flat_objects

    def counting(self, object_type, *args):
        loops.append(object_type.name)
        return real(self, object_type, *args)

    monkeypatch.setattr(ExecutionContext, "_complete_flat_objects", counting)
    run(ExecutionContext, [row(i, kind="typed") for i in range(3)])
    # outer selects an object field (inner): not flat, completed by graphql-core.
    assert loops == ["Item", "Item", "Item", "Typed"]


@pytest.mark.django_db
def test_the_api_and_the_in_process_client_execute_with_it(client, monkeypatch):
    loops = []
    real = ExecutionContext._complete_flat_objects

    def counting(self, object_type, plan, info, path, items):
        loops.append((object_type.name, len(items)))
        return real(self, object_type, plan, info, path, items)

    monkeypatch.setattr(ExecutionContext, "_complete_flat_objects", counting)
    ProductFactory.create_batch(3, stock=1)
    document = "mutation { updateLowStockProducts { updatedProducts { name stock } } }"
    answer = ok(client, document)["updateLowStockProducts"]["updatedProducts"]  # /graphql
    assert [product["stock"] for product in answer] == [11, 11, 11]
    ProductFactory.create_batch(2, stock=0)
    answer = graphql_client.execute(document)["updateLowStockProducts"]["updatedProducts"]  # schema.execute
    assert [product["stock"] for product in answer] == [10, 10]
    assert loops == [("RestockedProduct", 3), ("RestockedProduct", 2)]
