"""Leases, the database's clock, gaps and scheduler heartbeats (cronjobs/reaper.py, dbclock.py, gaps.py).

Running rows of older versions get a lease of one minute from now, so a dead one is closed by the
reaper instead of blocking its job. SQLite rebuilds the table to give started_at its database
default, and a rebuilt table loses its triggers: 0006's pause trigger is created again at the end
(the same statement; migrations are frozen history, so it is repeated here, not imported).
"""

from datetime import timedelta

import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

SQLITE_PAUSE_TRIGGER = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_paused_claim",
    """CREATE TRIGGER cronjobs_jobrun_paused_claim BEFORE INSERT ON cronjobs_jobrun
    WHEN NEW.status = 'running' AND NEW.scheduled_for IS NOT NULL
         AND EXISTS (SELECT 1 FROM cronjobs_jobpause p WHERE p.job_name = NEW.job_name)
    BEGIN SELECT RAISE(ABORT, 'cronjobs: the job is paused: its scheduled runs are not claimed'); END""",
]


def restore_sqlite_pause_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_PAUSE_TRIGGER:
            schema_editor.execute(statement, params=None)


def lease_running_rows(apps, schema_editor):
    JobRun = apps.get_model("cronjobs", "JobRun")
    JobRun.objects.filter(status="running", lease_expires_at__isnull=True).update(
        lease_expires_at=timezone.now() + timedelta(minutes=1)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cronjobs", "0006_paused_job_claim_refused"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SchedulerBeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("instance", models.CharField(help_text="Random id of the process.", max_length=32, unique=True)),
                ("route", models.CharField(choices=[("work", "crontab work"), ("beat", "Celery beat")], max_length=10)),
                ("host", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("last_tick", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("stopped_at", models.DateTimeField(blank=True, help_text="Set when it stopped cleanly.", null=True)),
                ("cronjobs_version", models.CharField(help_text="Hash of the CRONJOBS it fires.", max_length=16)),
                ("jobs", models.PositiveIntegerField(default=0, help_text="Jobs it fires.")),
                (
                    "clock_offset",
                    models.FloatField(blank=True, help_text="Its clock minus the database's, seconds.", null=True),
                ),
                (
                    "config_error",
                    models.TextField(blank=True, help_text="Why it refuses the CRONJOBS now in its settings."),
                ),
            ],
            options={
                "ordering": ["-last_tick"],
                "default_permissions": ("view",),
            },
        ),
        migrations.AddField(
            model_name="jobrun",
            name="clock_offset",
            field=models.FloatField(
                blank=True, help_text="Seconds the claiming host's clock was ahead of the database's.", null=True
            ),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="gap_count",
            field=models.PositiveIntegerField(blank=True, help_text="Due minutes in the gap.", null=True),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="gap_last",
            field=models.DateTimeField(blank=True, help_text="The gap's last missed minute.", null=True),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="late_finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="late_result",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="late_status",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, help_text="A running run is alive until then.", null=True),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="renewed_at",
            field=models.DateTimeField(blank=True, help_text="The lease's last renewal.", null=True),
        ),
        migrations.AlterField(
            model_name="jobrun",
            name="started_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
        migrations.AlterField(
            model_name="jobrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("crontab", "system crontab"),
                    ("manual", "by hand"),
                    ("work", "crontab work"),
                    ("celery", "Celery beat"),
                    ("admin", "admin"),
                    ("graphql", "GraphQL"),
                    ("http", "fire endpoint"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(
                condition=models.Q(("status", "running")),
                fields=["lease_expires_at"],
                name="cronjobs_jobrun_running_lease",
            ),
        ),
        migrations.RunPython(lease_running_rows, migrations.RunPython.noop),
        migrations.RunPython(restore_sqlite_pause_trigger, migrations.RunPython.noop),
    ]
