"""django-filter FilterSet of the run history; its filter names are GraphQL's `cronJobRuns(filter: ...)` entries."""

import django_filters
from django import forms

from alx_backend_graphql_crm.api.filters import DateTimeFilter, FilterSet
from cronjobs.models import JobRun


class ChoiceStringField(forms.CharField):
    """A string that must be one of `choices`. A CharField (not a ChoiceField) so that GraphQL
    exposes it as a plain String, the same words the database and /health/cron/ use."""

    def __init__(self, *args, choices, **kwargs):
        self.allowed = [value for value, _label in choices]
        super().__init__(*args, **kwargs)

    def validate(self, value):
        super().validate(value)
        if value not in self.empty_values and value not in self.allowed:
            raise forms.ValidationError(f"{value!r} is not one of: {', '.join(self.allowed)}.", code="invalid_choice")


class ChoiceStringFilter(django_filters.CharFilter):
    field_class = ChoiceStringField


class JobRunFilter(FilterSet):
    job_name = django_filters.CharFilter(field_name="job_name", label="Runs of this job (exact name).")
    status = ChoiceStringFilter(
        field_name="status", choices=JobRun.Status.choices, label="One of: " + ", ".join(JobRun.Status.values) + "."
    )
    trigger = ChoiceStringFilter(
        field_name="trigger", choices=JobRun.Trigger.choices, label="One of: " + ", ".join(JobRun.Trigger.values) + "."
    )
    started_at_gte = DateTimeFilter(field_name="started_at", lookup_expr="gte", label="Started at or after.")
    started_at_lte = DateTimeFilter(field_name="started_at", lookup_expr="lte", label="Started at or before.")

    class Meta:
        model = JobRun
        fields: list[str] = []
