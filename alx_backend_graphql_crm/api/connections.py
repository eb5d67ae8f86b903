"""Relay connections filtered by a django-filter FilterSet through one ``filter:`` input object."""

from django import forms
from django.conf import settings
from django_filters import OrderingFilter
from graphene import Argument, Boolean, DateTime, Float, InputObjectType, Int, List, NonNull, String, relay
from graphene.types.argument import to_arguments
from graphene.utils.str_converters import to_camel_case
from graphene_django.fields import DjangoConnectionField
from graphene_django.filter import DjangoFilterConnectionField
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from graphql_relay import cursor_to_offset, offset_to_cursor

from alx_backend_graphql_crm.api.errors import UserInputError
from alx_backend_graphql_crm.api.scalars import Decimal

# Form field class of a filter -> GraphQL input type of its entry in `filter:`. Most specific first.
_INPUT_TYPES = [
    (forms.DateTimeField, DateTime),
    (forms.DecimalField, Decimal),
    (forms.IntegerField, Int),
    (forms.FloatField, Float),
    (forms.NullBooleanField, Boolean),
    (forms.BooleanField, Boolean),
    (forms.CharField, String),
]


class CountableConnection(relay.Connection):
    """A Relay connection that also tells how many items match (the COUNT the page needs anyway)."""

    class Meta:
        abstract = True

    total_count = Int(required=True, description="Items matching the filter, on every page.")

    @staticmethod
    def resolve_total_count(connection, info):
        return connection.length


def _input_type_for(filter_) -> type:
    explicit = filter_.extra.get("graphql_type")
    if explicit is not None:
        return explicit
    for field_class, graphql_type in _INPUT_TYPES:
        if issubclass(filter_.field_class, field_class):
            return graphql_type
    raise TypeError(f"No GraphQL input type for {type(filter_).__name__} ({filter_.field_class.__name__})")


def filter_input_type(filterset_class, name: str) -> type[InputObjectType]:
    """An input object with one optional entry per filter of ``filterset_class`` (ordering excepted)."""
    attrs = {
        filter_name: _input_type_for(filter_)(description=filter_.label or None)
        for filter_name, filter_ in filterset_class.base_filters.items()
        if not isinstance(filter_, OrderingFilter)
    }
    return type(name, (InputObjectType,), attrs)


class _WhitelistField(forms.Field):
    """The ordering field's own check, saying every unknown name and listing the valid ones."""

    def clean(self, value):
        known = {choice for choice, _label in self.choices}
        unknown = [name for name in value or () if name not in known]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            verb = "is not one of" if len(unknown) == 1 else "are not among"
            valid = ", ".join(sorted(choice for choice, _label in self.choices if choice and choice[0] != "-"))
            raise forms.ValidationError(
                f"{names} {verb}: {valid} ('-' in front for descending).", code="invalid_choice"
            )
        return super().clean(value)


class StableOrderingFilter(OrderingFilter):
    """An OrderingFilter that ends every ordering with the primary key, so pages never overlap, and
    whose refusal lists the valid names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.field_class = type(self.field_class.__name__, (_WhitelistField, self.field_class), {})

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        if value and "pk" not in value and "-pk" not in value:
            qs = qs.order_by(*qs.query.order_by, "pk")
        return qs


def _ordering_filter(filterset_class) -> tuple[str, OrderingFilter] | None:
    for filter_name, filter_ in filterset_class.base_filters.items():
        if isinstance(filter_, OrderingFilter):
            return filter_name, filter_
    return None


class FilteredConnectionField(DjangoFilterConnectionField):
    """A connection with ``filter: <Type>Filter``, ``orderBy: [String!]`` and a capped page size.

    Arguments: ``first``/``last`` (capped at ``RELAY_CONNECTION_MAX_LIMIT``; a missing ``first``
    means that many), ``after``/``before``, ``offset`` (capped at ``GRAPHQL_MAX_OFFSET``),
    ``filter`` and ``orderBy``. A FilterSet's OrderingFilter gives the ``orderBy`` whitelist;
    a single string is accepted where the list is expected (GraphQL's input coercion).
    Invalid filter values are reported as a ``UserInputError`` naming the filter entry.
    """

    def __init__(self, type_, *, filterset_class, filter_input_name: str, **kwargs):
        self._filter_input = filter_input_type(filterset_class, filter_input_name)
        super().__init__(type_, filterset_class=filterset_class, **kwargs)

    @property
    def args(self):
        extra = {"filter": Argument(self._filter_input, description="Filters, combined with AND.")}
        ordering = _ordering_filter(self.filterset_class)
        if ordering:
            allowed = ", ".join(sorted(ordering[1].param_map))
            extra["order_by"] = Argument(
                List(NonNull(String)), description=f"Field names, '-' for descending; one of: {allowed}."
            )
        return to_arguments(self._base_args or {}, extra)

    @args.setter
    def args(self, args):
        self._base_args = args

    @classmethod
    def connection_resolver(
        cls,
        resolver,
        connection,
        default_manager,
        queryset_resolver,
        max_limit,
        enforce_first_or_last,
        root,
        info,
        **args,
    ):
        # graphene-django refuses a too-large `first` with an AssertionError (masked as an
        # internal error) and slices with a negative offset (a ValueError): say it clearly.
        for name in ("first", "last", "offset"):
            value = args.get(name)
            if value is not None and value < 0:
                raise UserInputError(f"'{name}' must be zero or more; got {value}.")
        for name in ("first", "last"):
            if max_limit and args.get(name) is not None:
                args[name] = min(args[name], max_limit)  # capped; pageInfo.hasNextPage tells there is more
        max_offset = settings.GRAPHQL_MAX_OFFSET
        if args.get("offset") is not None and args["offset"] > max_offset:
            raise UserInputError(
                f"'offset' is at most {max_offset}; got {args['offset']}. Narrow the filter to page deeper."
            )
        _check_cursors(args, max_offset)
        if args.get("offset") is not None and args.get("before") is not None:
            raise UserInputError("'offset' and 'before' cannot be used together.")
        # A forward page that nobody asks the total of does not need COUNT(*) over the whole
        # result (the costliest query of a large table on PostgreSQL): fetch first + 1 rows instead.
        args[_SKIP_COUNT] = args.get("last") is None and args.get("before") is None and not _selects(info, "totalCount")
        return super().connection_resolver(
            resolver,
            connection,
            default_manager,
            queryset_resolver,
            max_limit,
            enforce_first_or_last,
            root,
            info,
            **args,
        )

    @classmethod
    def resolve_connection(cls, connection, args, iterable, max_limit=None):
        if not args.pop(_SKIP_COUNT, False):
            return super().resolve_connection(connection, args, iterable, max_limit=max_limit)
        start = args.pop("offset", None) or 0
        if args.get("after") is not None:
            start += cursor_to_offset(args["after"]) + 1
        first = args.get("first")
        if first is None:
            first = max_limit
        rows = list(iterable[start : start + first + 1])
        page = rows[:first]
        edges = [connection.Edge(node=node, cursor=offset_to_cursor(start + i)) for i, node in enumerate(page)]
        result = connection(
            edges=edges,
            page_info=relay.PageInfo(
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
                has_previous_page=False,  # as graphql-relay answers for a forward page
                has_next_page=len(rows) > first,
            ),
        )
        result.iterable = iterable
        return result

    def get_queryset_resolver(self):
        filterset_class = self.filterset_class

        def resolve_queryset(connection, iterable, info, args):
            queryset = DjangoConnectionField.resolve_queryset(connection, iterable, info, args)
            data = dict(args.get("filter") or {})
            ordering = _ordering_filter(filterset_class)
            if ordering and args.get("order_by"):
                data[ordering[0]] = ",".join(args["order_by"])
            filterset = filterset_class(data=data, queryset=queryset, request=info.context)
            if not filterset.is_valid():
                problems = "; ".join(
                    f"{_argument_name(filterset_class, name)}: {' '.join(messages)}"
                    for name, messages in filterset.errors.items()
                )
                raise UserInputError(f"Invalid filter or ordering: {problems}")
            return filterset.qs

        return resolve_queryset


_SKIP_COUNT = "_skip_count"


def _check_cursors(args: dict, max_offset: int) -> None:
    """Refuse a cursor that is not ours, or points past ``max_offset`` (alone or added to ``offset``).

    A cursor is only base64 of ``arrayconnection:<n>``: a client can forge any n. graphene-django
    ignores a bad cursor alone but crashes on one combined with `offset`; a negative n indexes
    from the end, a huge one overflows the database's integers.
    """
    for name in ("after", "before"):
        if args.get(name) is None:
            continue
        position = cursor_to_offset(args[name])
        if position is None or position < 0:
            raise UserInputError(f"'{name}' is not a cursor from this connection.")
        reach = position + (args.get("offset") or 0)
        if reach > max_offset:
            raise UserInputError(
                f"'{name}' points at item {reach}; the limit is {max_offset}. Narrow the filter to page deeper."
            )


def _selects(info, field_name: str) -> bool:
    """Whether the current field's selection asks for ``field_name`` (through fragments too)."""

    def walk(selection_set) -> bool:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode) and selection.name.value == field_name:
                return True
            if isinstance(selection, InlineFragmentNode) and walk(selection.selection_set):
                return True
            if isinstance(selection, FragmentSpreadNode):
                fragment = info.fragments.get(selection.name.value)
                if fragment is not None and walk(fragment.selection_set):
                    return True
        return False

    return any(walk(node.selection_set) for node in info.field_nodes)


def _argument_name(filterset_class, filter_name: str) -> str:
    ordering = _ordering_filter(filterset_class)
    if ordering and filter_name == ordering[0]:
        return "orderBy"
    return f"filter.{to_camel_case(filter_name)}"
