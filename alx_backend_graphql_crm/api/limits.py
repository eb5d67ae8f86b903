"""Validation rules that refuse too-deep or too-costly documents before they run."""

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules

from alx_backend_graphql_crm.api.errors import QueryRejected


class _Measure:
    """Depth and cost of one operation, with every fragment expanded at each of its uses.

    Each fragment is measured once and its numbers reused, so a document that spreads a fragment
    many times (a "fragment bomb") costs linear time to measure, while its cost is still counted
    once per use. Fields under ``__schema``/``__type`` are not counted: introspection has its
    own switch, and its standard query is deeper than any real data query.

    The cost (``cost()``, with the schema) is what the limit on the size of an answer counts:
    each field once per object it may be resolved on. A list field multiplies what is under it
    by the number of items it may hold: a connection's ``edges`` by the connection's ``first`` or
    ``last`` (a number, or a variable holding one), else by ``page_size`` (the page cap); any other list
    (``order.products``, ``cronJobs``) by ``page_size`` as well. So
    ``allOrders(first: 10) { edges { node { id products { name } } } }`` costs
    allOrders + edges + 10 x (node + id + products + 100 x name) = 2 + 10 x 103 = 1,032.
    """

    def __init__(
        self, fragments, *, schema: GraphQLSchema | None = None, page_size: int = 100, variables: dict | None = None
    ):
        self.fragments = fragments
        self.memo: dict[str, tuple[int, int, int]] = {}
        self.visiting: set[str] = set()
        self.schema = schema
        self.page_size = page_size
        self.cost_memo: dict[tuple[str, int | None], int] = {}
        self.variables = variables or {}

    def selection_set(self, selection_set) -> tuple[int, int, int]:
        """(depth, fields, aliases) of a selection set."""
        depth = fields = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                if selection.name.value in ("__schema", "__type"):
                    continue
                sub_depth, sub_fields, sub_aliases = self.selection_set(selection.selection_set)
                depth = max(depth, 1 + sub_depth)
                fields += 1 + sub_fields
                aliases += (1 if selection.alias else 0) + sub_aliases
            elif isinstance(selection, InlineFragmentNode):
                sub = self.selection_set(selection.selection_set)
                depth, fields, aliases = max(depth, sub[0]), fields + sub[1], aliases + sub[2]
            elif isinstance(selection, FragmentSpreadNode):
                sub = self.fragment(selection.name.value)
                depth, fields, aliases = max(depth, sub[0]), fields + sub[1], aliases + sub[2]
        return depth, fields, aliases

    def fragment(self, name: str) -> tuple[int, int, int]:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return 0, 0, 0  # unknown fragments and cycles are reported by GraphQL's own rules
        self.visiting.add(name)
        self.memo[name] = self.selection_set(fragment.selection_set)
        self.visiting.discard(name)
        return self.memo[name]

    def cost(self, selection_set, parent_type, page: int | None = None) -> int:
        """Entries ``selection_set`` may answer on one object of ``parent_type``.

        ``page`` is the ``first``/``last`` of the field owning the selection (its ``edges`` length).
        """
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += self._field_cost(selection, parent_type, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = self.schema.get_type(condition.name.value) if condition else parent_type
                total += self.cost(selection.selection_set, type_, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment_cost(selection.name.value, page)
        return total

    def _field_cost(self, node: FieldNode, parent_type, page: int | None) -> int:
        if node.name.value in ("__schema", "__type"):
            return 1  # introspection has its own switch
        fields = parent_type.fields if isinstance(parent_type, GraphQLObjectType | GraphQLInterfaceType) else {}
        field = fields.get(node.name.value)
        if field is None:
            return 1  # an unknown field: GraphQL's own rules report it
        items = 1
        if is_list_type(get_nullable_type(field.type)):
            items = page if node.name.value == "edges" and page is not None else self.page_size
        under = self.cost(node.selection_set, get_named_type(field.type), self._page(node)) if node.selection_set else 0
        return 1 + items * under

    def _page(self, node: FieldNode) -> int | None:
        """The page length a field asks for with ``first``/``last`` (capped); None when it does not say."""
        sizes = []
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                sizes.append(int(value.value))
            elif isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int) and not isinstance(given, bool):
                    sizes.append(given)
        return min(max(0, min(sizes)), self.page_size) if sizes else None

    def _fragment_cost(self, name: str, page: int | None) -> int:
        key = (name, page)
        if key not in self.cost_memo:
            fragment = self.fragments.get(name)
            if fragment is None or name in self.visiting:
                return 0  # unknown fragments and cycles are reported by GraphQL's own rules
            self.visiting.add(name)
            self.cost_memo[key] = self.cost(
                fragment.selection_set, self.schema.get_type(fragment.type_condition.name.value), page
            )
            self.visiting.discard(name)
        return self.cost_memo[key]


def cost_errors(
    document: DocumentNode, schema: GraphQLSchema, *, max_cost: int, page_size: int, variables: dict | None = None
) -> list:
    """A QueryRejected for each operation of ``document`` whose answer may exceed ``max_cost`` entries.

    ``variables`` (the request's, as sent) give the page length of a ``first: $n``."""
    fragments = _fragments(document)
    roots = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }
    errors = []
    for node in document.definitions:
        if isinstance(node, OperationDefinitionNode) and roots.get(node.operation) is not None:
            measure = _Measure(fragments, schema=schema, page_size=page_size, variables=variables)
            cost = measure.cost(node.selection_set, roots[node.operation])
            if cost > max_cost:
                name = f"Operation '{node.name.value}'" if node.name else "The operation"
                errors.append(
                    QueryRejected(
                        f"{name} may return {cost} entries (each field counted once per object, a list as "
                        f"{page_size} items or its page's first/last); the limit is {max_cost}. "
                        "Ask for smaller pages (first:) or fewer fields.",
                        nodes=[node],
                    )
                )
    return errors


def _fragments(document: DocumentNode) -> dict:
    return {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }


def limits_rule(
    *,
    max_depth: int,
    max_fields: int,
    max_aliases: int,
    max_cost: int | None = None,
    page_size: int = 100,
    variables: dict | None = None,
) -> type[ValidationRule]:
    """A rule refusing operations deeper than ``max_depth`` or selecting more fields or aliases.

    Fields are counted after fragment expansion: a cost limit, since every selected field is
    resolved once per object (50 aliases of one list field run 50 sets of queries).
    """

    class QueryLimitsRule(ValidationRule):
        rejected = False

        def report_error(self, error):
            self.rejected = True
            super().report_error(error)

        def leave_document(self, node: DocumentNode, *_args):
            # Measured last: a document within the size limits costs linear time to measure.
            if max_cost is not None and not self.rejected:
                for error in cost_errors(
                    node, self.context.schema, max_cost=max_cost, page_size=page_size, variables=variables
                ):
                    self.report_error(error)

        def enter_operation_definition(self, node: OperationDefinitionNode, *_args):
            fragments = {
                definition.name.value: definition
                for definition in self.context.document.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            depth, fields, aliases = _Measure(fragments).selection_set(node.selection_set)
            name = f"Operation '{node.name.value}'" if node.name else "The operation"
            if depth > max_depth:
                self.report_error(
                    QueryRejected(f"{name} is {depth} levels deep; the limit is {max_depth}.", nodes=[node])
                )
            if fields > max_fields:
                self.report_error(
                    QueryRejected(
                        f"{name} selects {fields} fields (fragments counted at each use); the limit is {max_fields}.",
                        nodes=[node],
                    )
                )
            if aliases > max_aliases:
                self.report_error(
                    QueryRejected(f"{name} uses {aliases} aliases; the limit is {max_aliases}.", nodes=[node])
                )
            return self.SKIP

    return QueryLimitsRule


def validation_rules(
    *,
    max_depth: int,
    max_fields: int,
    max_aliases: int,
    introspection: bool,
    max_cost: int | None = None,
    page_size: int = 100,
    variables: dict | None = None,
) -> list:
    """Every validation rule of a request: graphql-core's standard ones plus our limits.

    ``validate()`` replaces its standard rules with the list it is given, so they are included.

    ``NoSchemaIntrospectionCustomRule`` refuses ``__schema``/``__type`` but keeps ``__typename``,
    which Relay and Apollo clients need (graphene's ``DisableIntrospection`` blocks it too).
    """
    limits = limits_rule(
        max_depth=max_depth,
        max_fields=max_fields,
        max_aliases=max_aliases,
        max_cost=max_cost,
        page_size=page_size,
        variables=variables,
    )
    rules = [*specified_rules, limits]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules
