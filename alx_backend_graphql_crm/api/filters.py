"""Filter building blocks shared by every app's FilterSets."""

import django_filters
from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django_filters.fields import IsoDateTimeField
from graphene.utils.str_converters import to_camel_case

from alx_backend_graphql_crm.api.permissions import check_permissions, permission_text
from alx_backend_graphql_crm.validation import validate_text, validate_utc_range


class BoundedIsoDateTimeField(IsoDateTimeField):
    """An ISO date-time; a date alone means midnight in the current time zone.

    Refuses values that cannot be converted to UTC (year 1 or 9999 with an offset), which the
    database adapter would otherwise fail on with an OverflowError (an internal error).
    """

    def to_python(self, value):
        result = super().to_python(value)
        if result is not None:
            validate_utc_range(result)
        return result


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


class FilterSet(django_filters.FilterSet):
    """Base of the FilterSets behind a FilteredConnectionField.

    - Text entries follow the rule of every text field (``validate_text``): a lone surrogate or a
      control character is an invalid filter value, not a database driver's crash.
    - A filter declared with ``permission="app.codename"`` reveals data of another model (an
      order's customer name): using it needs that permission too, or the request gets a
      top-level PermissionDenied naming the filter entry. The entry's description says so.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # FilterSetMetaclass has collected declared_filters before this runs, base_filters after.
        for filter_ in cls.declared_filters.values():
            if "permission" in filter_.extra:
                filter_.permission = filter_.extra.pop("permission")
                needs = permission_text([filter_.permission])
                filter_.label = f"{filter_.label} {needs}" if filter_.label else needs

    def is_valid(self):
        """Whether the values are valid; first refuses a filter the user may not use (PermissionDenied)."""
        for name, value in self.data.items():
            permission = getattr(self.filters.get(name), "permission", None)
            if permission and value not in (None, ""):
                check_permissions(self.request, [permission], subject=f"filter.{to_camel_case(name)}")
        return super().is_valid()

    @property
    def form(self):
        if not hasattr(self, "_form"):
            for field in super().form.fields.values():
                if isinstance(field, forms.CharField):
                    # validate_text refuses NUL too, with Django's message: one error, not two.
                    others = [v for v in field.validators if not isinstance(v, ProhibitNullCharactersValidator)]
                    field.validators = [*others, validate_text]
        return self._form
