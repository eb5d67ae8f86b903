"""Value rules shared by the domain and the GraphQL toolkit: errors (one refusal for all), decimals, dates, text.

It imports Django only, never an app nor graphene: services import it without depending on the
API, and the API toolkit imports it without depending on any app (the cronjobs engine and crm
both build on the toolkit, which must stay ignorant of them).
"""

import datetime
import decimal
import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

MAX_DECIMAL_EXPONENT = 50
# Significant digits a decimal may carry: far beyond any amount (prices have 12). Python's Decimal
# context refuses arithmetic past 16,384 fractional digits (InvalidOperation), a 500 before this bound.
MAX_DECIMAL_DIGITS = 50


@dataclass(frozen=True)
class InputError:
    """One mistake in an input: ``field`` as the code names it ("" for the whole input),
    ``index`` the 0-based row of a list input (None otherwise)."""

    field: str
    message: str
    code: str
    index: int | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"row {self.index}: {text}" if self.index is not None else text


class FieldErrors:
    """Every mistake found in one input, by field, refused together as one ValidationError.

    A service checks every field before it refuses, so its caller learns all its mistakes in one
    answer. ``order`` names the input's fields in the order they are reported (the first is what a
    payload's ``message`` states); mistakes on other fields come after them.
    """

    def __init__(self, *order: str):
        self.order = order
        self._errors: dict[str, list[ValidationError]] = {}

    def add(self, field: str, message: str, code: str) -> None:
        self._errors.setdefault(field, []).append(ValidationError(message, code=code))

    @contextmanager
    def collect(self, field: str = NON_FIELD_ERRORS):
        """Record a ValidationError raised in the block instead of raising it: by the fields it names,
        else under ``field``."""
        try:
            yield
        except ValidationError as exc:
            named = exc.error_dict.items() if hasattr(exc, "error_dict") else [(field, exc.error_list)]
            for name, errors in named:
                self._errors.setdefault(name, []).extend(errors)

    @property
    def fields(self) -> list[str]:
        """The fields found wrong so far (e.g. to leave out of a later ``full_clean``)."""
        return list(self._errors)

    def __contains__(self, field: str) -> bool:
        return field in self._errors

    def raise_if_any(self) -> None:
        if self._errors:
            rank = {name: position for position, name in enumerate(self.order)}
            raise ValidationError(dict(sorted(self._errors.items(), key=lambda item: rank.get(item[0], len(rank)))))


def errors_from_validation(exc: ValidationError, *, index: int | None = None) -> list[InputError]:
    """Flatten a Django ValidationError (a dict by field, or a plain list) into InputErrors."""
    if hasattr(exc, "error_dict"):
        items = [(name, error) for name, errors in exc.error_dict.items() for error in errors]
    else:
        items = [("", error) for error in exc.error_list]
    # A ValidationError iterates its formatted messages (params filled in).
    return [
        InputError("" if name == "__all__" else name, next(iter(error)), error.code or "invalid", index)
        for name, error in items
    ]


def to_exact_decimal(value) -> decimal.Decimal:
    """A finite Decimal from a string, an int or a float (a float through its shortest repr).

    ``repr(999.99)`` is ``'999.99'``: the shortest text that round-trips, which is what the
    client wrote in its JSON, so a float is stored exactly as sent. Raises a ValidationError
    (code "invalid") for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise ValidationError(f"Decimal cannot represent {value!r}: send a number or a numeric string.", "invalid")
    try:
        result = decimal.Decimal(repr(value) if isinstance(value, float) else value)
    except (decimal.InvalidOperation, ValueError):
        raise ValidationError(
            f"Decimal cannot represent {value!r}: send a number or a numeric string.", "invalid"
        ) from None
    if not result.is_finite():
        raise ValidationError(f"Decimal cannot represent {value!r}: it must be finite.", "invalid")
    if result and abs(result.adjusted()) > MAX_DECIMAL_EXPONENT:
        # Far beyond any amount; databases overflow on such numbers in comparisons.
        raise ValidationError(f"Decimal {_short(value)} is out of range.", "invalid")
    if len(result.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        raise ValidationError(
            f"Decimal {_short(value)} has {len(result.as_tuple().digits)} digits; at most {MAX_DECIMAL_DIGITS}.",
            "invalid",
        )
    return result


def validate_utc_range(value: datetime.datetime) -> None:
    """Refuse a date-time that cannot be converted to UTC (year 1 or 9999 with an offset): the
    database adapters fail on it with an OverflowError."""
    try:
        value.astimezone(datetime.UTC)
    except OverflowError:
        raise ValidationError("Date-time out of range: it must fall within years 1-9999 in UTC.", "invalid") from None


def _short(value) -> str:
    """A value as an error message quotes it: its first 30 characters."""
    text = repr(value)
    return text if len(text) <= 32 else f"{text[:30]}...'"


def validate_text(value) -> None:
    """Refuse text no field of ours may hold: control characters (NUL included) and lone surrogates.

    A lone surrogate (JSON's "\\ud800") is not a character: no database can encode it (the driver
    raises UnicodeEncodeError). PostgreSQL cannot store NUL at all; the other control characters
    (U+0001-U+001F, U+007F-U+009F) have no place in a name, an address or a search and are how
    log and terminal injection starts. U+2028/U+2029 (line and paragraph separators) end a line for
    any reader that splits on Unicode line boundaries (Python's ``splitlines()``), so a name could forge
    a log line; the bidi controls (U+202A-U+202E, U+2066-U+2069) reorder what is displayed after them.
    Names the first offending character by its code point.
    """
    found = _UNSAFE_TEXT.search(value) if isinstance(value, str) else None
    if found is None:
        return
    char = found.group()
    if char == "\x00":
        raise ValidationError("Null characters are not allowed.", code="null_characters_not_allowed")
    if unicodedata.category(char) == "Cs":
        raise ValidationError(f"Unpaired surrogates are not allowed (U+{ord(char):04X}).", code="lone_surrogate")
    if char in "\u2028\u2029":
        raise ValidationError(f"Line separators are not allowed (U+{ord(char):04X}).", code="line_separator")
    if unicodedata.category(char) == "Cf":
        raise ValidationError(f"Bidirectional controls are not allowed (U+{ord(char):04X}).", code="bidi_control")
    raise ValidationError(f"Control characters are not allowed (U+{ord(char):04X}).", code="control_character")


# Unicode category Cc (C0 controls, DEL, C1 controls), Cs (surrogates, only ever unpaired in a str),
# Zl and Zp (U+2028, U+2029) and the bidi embedding, override and isolate controls.
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
