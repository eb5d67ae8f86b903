"""Filter building blocks shared by every app's FilterSets."""

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class BoundedIsoDateTimeField(IsoDateTimeField):
    """An ISO date-time; a date alone means midnight in the current time zone.

    Refuses values that cannot be converted to UTC (year 1 or 9999 with an offset), which the
    database adapter would otherwise fail on with an OverflowError (an internal error).
    """

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None:
            try:
                result.astimezone(datetime.UTC)
            except OverflowError:
                raise forms.ValidationError("Date-time out of range.", code="invalid") from None
        return result


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField
