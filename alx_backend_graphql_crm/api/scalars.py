"""Scalars and ID decoding shared by every schema: an exact Decimal, global-or-integer IDs."""

import decimal
import re

import graphene
from graphql import FloatValueNode, GraphQLError, IntValueNode, StringValueNode, Undefined
from graphql_relay import from_global_id

MAX_DECIMAL_EXPONENT = 50
_PLAIN_ID = re.compile(r"^\s*\d{1,18}\s*$")  # 18 digits stays inside a 64-bit primary key


def to_exact_decimal(value) -> decimal.Decimal:
    """A finite Decimal from a string, an int or a float (a float through its shortest repr).

    ``repr(999.99)`` is ``'999.99'``: the shortest text that round-trips, which is what the
    client wrote in its JSON, so a float variable is stored exactly as sent.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise GraphQLError(f"Decimal cannot represent {value!r}: send a number or a numeric string.")
    try:
        result = decimal.Decimal(repr(value) if isinstance(value, float) else value)
    except (decimal.InvalidOperation, ValueError):
        raise GraphQLError(f"Decimal cannot represent {value!r}: send a number or a numeric string.") from None
    if not result.is_finite():
        raise GraphQLError(f"Decimal cannot represent {value!r}: it must be finite.")
    if result and abs(result.adjusted()) > MAX_DECIMAL_EXPONENT:
        # Far beyond any amount; databases overflow on such numbers in comparisons.
        raise GraphQLError(f"Decimal {value!r} is out of range.")
    return result


class Decimal(graphene.Scalar):
    """An exact decimal number. Output: a string such as "999.99". Input: a string, Int or Float
    ("999.99", 999.99 and 1000 are all accepted; a Float literal is read from its text, never
    through binary floating point)."""

    @staticmethod
    def serialize(value):
        return str(value if isinstance(value, decimal.Decimal) else to_exact_decimal(value))

    @staticmethod
    def parse_value(value):
        return to_exact_decimal(value)

    @classmethod
    def parse_literal(cls, node, _variables=None):
        if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
            try:
                return to_exact_decimal(node.value)
            except GraphQLError:
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
