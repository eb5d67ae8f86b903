"""JobRun statuses `interrupted` (ended by a signal) and `missed` (a slot started past its grace, an alarm).

Rows recorded before as `skipped` with a "missed: ..." result become `missed`.
"""

from django.db import migrations, models


def skipped_missed_to_missed(apps, schema_editor):
    JobRun = apps.get_model("cronjobs", "JobRun")
    JobRun.objects.filter(status="skipped", result__startswith="missed:").update(status="missed")


def missed_to_skipped(apps, schema_editor):
    JobRun = apps.get_model("cronjobs", "JobRun")
    JobRun.objects.filter(status="missed").update(status="skipped")
    JobRun.objects.filter(status="interrupted").update(status="failed")


class Migration(migrations.Migration):

    dependencies = [
        ('cronjobs', '0002_jobrun_triggered_by_run_job'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='jobrun',
            name='cronjobs_jobrun_status_valid',
        ),
        migrations.AlterField(
            model_name='jobrun',
            name='status',
            field=models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('skipped', 'Skipped'), ('timed_out', 'Timed Out'), ('interrupted', 'Interrupted'), ('missed', 'Missed')], default='running', max_length=20),
        ),
        migrations.AddConstraint(
            model_name='jobrun',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['running', 'succeeded', 'failed', 'skipped', 'timed_out', 'interrupted', 'missed'])), name='cronjobs_jobrun_status_valid'),
        ),
        migrations.RunPython(skipped_missed_to_missed, missed_to_skipped),
    ]
