"""Validation rules that refuse too-deep or too-costly documents before they run."""

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    ValidationRule,
)
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules

from alx_backend_graphql_crm.api.errors import QueryRejected


class _Measure:
    """Depth and cost of one operation, with every fragment expanded at each of its uses.

    Each fragment is measured once and its numbers reused, so a document that spreads a fragment
    many times (a "fragment bomb") costs linear time to measure, while its cost is still counted
    once per use. Fields under ``__schema``/``__type`` are not counted: introspection has its
    own switch, and its standard query is deeper than any real data query.
    """

    def __init__(self, fragments):
        self.fragments = fragments
        self.memo: dict[str, tuple[int, int, int]] = {}
        self.visiting: set[str] = set()

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


def limits_rule(*, max_depth: int, max_fields: int, max_aliases: int) -> type[ValidationRule]:
    """A rule refusing operations deeper than ``max_depth`` or selecting more fields or aliases.

    Fields are counted after fragment expansion: a cost limit, since every selected field is
    resolved once per object (50 aliases of one list field run 50 sets of queries).
    """

    class QueryLimitsRule(ValidationRule):
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


def validation_rules(*, max_depth: int, max_fields: int, max_aliases: int, introspection: bool) -> list:
    """Every validation rule of a request: graphql-core's standard ones plus our limits.

    ``validate()`` replaces its standard rules with the list it is given, so they are included.

    ``NoSchemaIntrospectionCustomRule`` refuses ``__schema``/``__type`` but keeps ``__typename``,
    which Relay and Apollo clients need (graphene's ``DisableIntrospection`` blocks it too).
    """
    rules = [*specified_rules, limits_rule(max_depth=max_depth, max_fields=max_fields, max_aliases=max_aliases)]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules
