"""The limits that refuse too-long, too-deep or too-costly documents before any validation rule runs."""

from collections import Counter

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
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.language import TokenKind
from graphql.language.parser import Parser
from graphql.validation import NoSchemaIntrospectionCustomRule, ValuesOfCorrectTypeRule, specified_rules

from alx_backend_graphql_crm.api.errors import QueryRejected
from alx_backend_graphql_crm.api.input_values import NamedValuesOfCorrectTypeRule


class _Measure:
    """Depth and cost of one operation, with every fragment expanded at each of its uses.

    Each fragment is measured once and its numbers reused, so a document that spreads a fragment
    many times (a "fragment bomb") costs linear time to measure, while its cost is still counted
    once per use. The depth under ``__schema``/``__type`` is not counted (introspection has its
    own switch, and its standard query is 15 levels deep), their fields are: the standard query
    selects 226, and a wide selection there costs validation as much as anywhere else.

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
                sub_depth, sub_fields, sub_aliases = self.selection_set(selection.selection_set)
                if selection.name.value not in ("__schema", "__type"):
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


def parse_within_limits(query: str, *, max_tokens: int, max_nesting: int) -> DocumentNode:
    """The parsed document, or ``QueryRejected`` as soon as it passes ``max_tokens`` or ``max_nesting``.

    Both are counted while the parser reads, token by token: the parser recurses once per
    bracket level, so a document nested deeper than ``max_nesting`` is refused before that
    recursion, and one with more than ``max_tokens`` before the rest is read.
    """
    return _BoundedParser(query, max_tokens=max_tokens, max_nesting=max_nesting).parse_document()


class _BoundedParser(Parser):
    """graphql-core's parser counting tokens (its own ``max_tokens`` counter) and bracket nesting."""

    def __init__(self, source: str, *, max_tokens: int, max_nesting: int):
        super().__init__(source, max_tokens=max_tokens)
        self._max_nesting = max_nesting
        self._nesting = 0

    def advance_lexer(self) -> None:
        token = self._lexer.advance()
        if token.kind == TokenKind.EOF:
            return
        self._token_counter += 1
        if self._token_counter > self._max_tokens:
            self._refuse(token, f"The query has more than {self._max_tokens} tokens; the limit is {self._max_tokens}.")
        if token.kind in _OPENING:
            self._nesting += 1
            if self._nesting > self._max_nesting:
                self._refuse(
                    token,
                    f"The query nests brackets more than {self._max_nesting} levels deep; "
                    f"the limit is {self._max_nesting}.",
                )
        elif token.kind in _CLOSING:
            self._nesting -= 1

    def _refuse(self, token, message: str):
        raise QueryRejected(message, source=self._lexer.source, positions=[token.start])


_OPENING = frozenset({TokenKind.BRACE_L, TokenKind.BRACKET_L, TokenKind.PAREN_L})
_CLOSING = frozenset({TokenKind.BRACE_R, TokenKind.BRACKET_R, TokenKind.PAREN_R})


def limit_errors(
    document: DocumentNode,
    schema: GraphQLSchema,
    *,
    max_depth: int,
    max_fields: int,
    max_aliases: int,
    max_repeats: int,
    max_cost: int | None = None,
    page_size: int = 100,
    variables: dict | None = None,
) -> list[QueryRejected]:
    """The limits ``document`` exceeds: depth, fields, aliases, repeated names, cost (none: an empty list).

    Run on the parsed document before graphql-core's validation rules, some of which cost time
    quadratic in the number of fields (OverlappingFieldsCanBeMergedRule): measuring is linear.
    Fields are counted after fragment expansion: a cost limit, since every selected field is
    resolved once per object (50 aliases of one list field run 50 sets of queries).
    """
    fragments = _fragments(document)
    errors = _operation_errors(document, _Measure(fragments), max_depth, max_fields, max_aliases)
    if not errors:
        errors = _repeat_errors(document, _ResponseNames(fragments), max_repeats)
    if not errors and max_cost is not None:  # measured last: within the limits above it is cheap
        errors = cost_errors(document, schema, max_cost=max_cost, page_size=page_size, variables=variables)
    return errors


def _operation_errors(document, measure, max_depth: int, max_fields: int, max_aliases: int) -> list[QueryRejected]:
    errors = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        depth, fields, aliases = measure.selection_set(node.selection_set)
        name = f"Operation '{node.name.value}'" if node.name else "The operation"
        if depth > max_depth:
            errors.append(QueryRejected(f"{name} is {depth} levels deep; the limit is {max_depth}.", nodes=[node]))
        if fields > max_fields:
            errors.append(
                QueryRejected(
                    f"{name} selects {fields} fields (fragments counted at each use); the limit is {max_fields}.",
                    nodes=[node],
                )
            )
        if aliases > max_aliases:
            errors.append(QueryRejected(f"{name} uses {aliases} aliases; the limit is {max_aliases}.", nodes=[node]))
    return errors


class _ResponseNames:
    """How many times each response name is selected in a selection set, fragments expanded at each use.

    graphql-core's OverlappingFieldsCanBeMergedRule compares every pair of fields that share a
    response name in a selection set (``{ a a a ... }``: n²/2 comparisons of a few microseconds
    each); bounding the repeats of each name bounds that work to ``max_repeats`` times the fields.
    Fragments are counted once and their counts reused, as in ``_Measure``.
    """

    def __init__(self, fragments):
        self.fragments = fragments
        self.memo: dict[str, Counter] = {}
        self.visiting: set[str] = set()

    def counts(self, selection_set) -> Counter:
        counts: Counter = Counter()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                counts[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, InlineFragmentNode):
                counts.update(self.counts(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                counts.update(self.fragment(selection.name.value))
        return counts

    def fragment(self, name: str) -> Counter:
        if name not in self.memo:
            fragment = self.fragments.get(name)
            if fragment is None or name in self.visiting:
                return Counter()  # unknown fragments and cycles are reported by GraphQL's own rules
            self.visiting.add(name)
            self.memo[name] = self.counts(fragment.selection_set)
            self.visiting.discard(name)
        return self.memo[name]


def _repeat_errors(document: DocumentNode, names: _ResponseNames, max_repeats: int) -> list[QueryRejected]:
    """One error for the first selection set selecting a response name more than ``max_repeats`` times."""
    pending = [getattr(definition, "selection_set", None) for definition in document.definitions]
    while pending:  # every selection set of the document once, without recursion
        selection_set = pending.pop()
        if selection_set is None:
            continue
        name, repeats = max(names.counts(selection_set).items(), key=lambda item: item[1], default=("", 0))
        if repeats > max_repeats:
            message = (
                f"'{name}' is selected {repeats} times in one selection set (fragments counted at each use); "
                f"the limit is {max_repeats}."
            )
            return [QueryRejected(message, nodes=[selection_set])]
        pending += [getattr(selection, "selection_set", None) for selection in selection_set.selections]
    return []


def validation_rules(*, introspection: bool) -> list:
    """graphql-core's standard validation rules, run once ``limit_errors`` found nothing.

    ``validate()`` replaces its standard rules with the list it is given, so they are included.

    Refusals of values written in the document name where the value is and what is accepted
    (``NamedValuesOfCorrectTypeRule`` in place of graphql-core's ``ValuesOfCorrectTypeRule``).

    ``NoSchemaIntrospectionCustomRule`` refuses ``__schema``/``__type`` but keeps ``__typename``,
    which Relay and Apollo clients need (graphene's ``DisableIntrospection`` blocks it too).
    """
    rules = [NamedValuesOfCorrectTypeRule if rule is ValuesOfCorrectTypeRule else rule for rule in specified_rules]
    return [*rules, NoSchemaIntrospectionCustomRule] if not introspection else rules


def variables_error(variables, *, max_values: int, max_depth: int, max_string: int) -> str | None:
    """Why ``variables`` (the request's decoded JSON) are too large to coerce, or None.

    graphql-core coerces every item of a list variable before any resolver (and so any permission
    check) runs: 1.3 million integers cost an anonymous client 4-10 s of a worker's CPU. Counted here
    first, in one pass that stops at the first limit passed: every list item and object entry is a
    value; nesting is counted in containers; strings by their length.
    """
    stack, values = [(variables, 1)], 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return f"The variables nest {depth} levels deep; the limit is {max_depth}."
            values += len(value)
            if values > max_values:
                return f"The variables hold more than {max_values} values; the limit is {max_values}."
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
        elif isinstance(value, str) and len(value) > max_string:
            return f"A variable holds a string of {len(value)} characters; the limit is {max_string}."
    return None
