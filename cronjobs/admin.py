"""Read-only run history in the Django admin, filterable by job, status and trigger."""

from django.contrib import admin

from cronjobs.models import JobRun


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job_name", "status", "trigger", "scheduled_for", "started_at", "duration", "host", "pid")
    list_filter = (("job_name", admin.AllValuesFieldListFilter), "status", "trigger", "started_at")
    search_fields = ("job_name", "result")
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in JobRun._meta.fields]

    # History is evidence: nobody edits or deletes it by hand; prune_job_runs handles retention.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
