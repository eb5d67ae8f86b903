"""Scalars and ID decoding shared by every schema: an exact Decimal, global-or-integer IDs."""

import decimal
import re

import graphene
from django.core.exceptions import ValidationError
from graphql import FloatValueNode, GraphQLError, IntValueNode, StringValueNode, Undefined
from graphql_relay import from_global_id

from alx_backend_graphql_crm.validation import to_exact_decimal

_PLAIN_ID = re.compile(r"^\s*\d{1,18}\s*$")  # 18 digits stays inside a 64-bit primary key


def _decimal(value) -> decimal.Decimal:
    try:
        return to_exact_decimal(value)
    except ValidationError as exc:
        raise GraphQLError(exc.messages[0]) from None


class Decimal(graphene.Scalar):
    """An exact decimal number. Output: a string such as "999.99". Input: a string, Int or Float
    ("999.99", 999.99 and 1000 are all accepted; a Float literal is read from its text, never
    through binary floating point)."""

    @staticmethod
    def serialize(value):
        return str(value if isinstance(value, decimal.Decimal) else _decimal(value))

    @staticmethod
    def parse_value(value):
        return _decimal(value)

    @classmethod
    def parse_literal(cls, node, _variables=None):
        if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
            try:
                return to_exact_decimal(node.value)
            except ValidationError:
                return Undefined
        return Undefined


def decode_id(value, type_name: str) -> int | None:
    """The primary key in a Relay global ID of ``type_name`` or a plain integer; None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    if _PLAIN_ID.match(value):
        return int(value)
    try:
        decoded_type, decoded_id = from_global_id(value)
    except Exception:  # from_global_id raises several types on garbage; all mean "not an ID"
        return None
    if decoded_type != type_name or not _PLAIN_ID.match(decoded_id or ""):
        return None
    return int(decoded_id)


def decode_ids(values, type_name: str) -> list:
    """The primary key of each value (a global ID of ``type_name`` or an integer), in order; a value
    that is neither is passed on as it came, for the service to refuse naming it ("Invalid product
    ID: abc") with every other mistake of the input."""
    return [value if (pk := decode_id(value, type_name)) is None else pk for value in values]
