"""The database refuses to claim a scheduled slot of a paused job.

A trigger on cronjobs_jobrun: inserting a `running` row with a scheduled minute while the job has a
JobPause row raises an integrity error. The runner then reads the pause and records the skip, so the
pause is checked by the claim itself (one statement, no window between looking and claiming) instead
of by a query before it. Runs by hand (no scheduled minute) and recorded skips are not affected.
"""

from django.db import migrations

MESSAGE = "cronjobs: the job is paused: its scheduled runs are not claimed"

SQLITE_FORWARD = [
    f"""CREATE TRIGGER cronjobs_jobrun_paused_claim BEFORE INSERT ON cronjobs_jobrun
    WHEN NEW.status = 'running' AND NEW.scheduled_for IS NOT NULL
         AND EXISTS (SELECT 1 FROM cronjobs_jobpause p WHERE p.job_name = NEW.job_name)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS cronjobs_jobrun_paused_claim"]

POSTGRES_FORWARD = [
    f"""CREATE FUNCTION cronjobs_jobrun_paused_claim() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM cronjobs_jobpause p WHERE p.job_name = NEW.job_name) THEN
            RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER cronjobs_jobrun_paused_claim BEFORE INSERT ON cronjobs_jobrun
    FOR EACH ROW WHEN (NEW.status = 'running' AND NEW.scheduled_for IS NOT NULL)
    EXECUTE FUNCTION cronjobs_jobrun_paused_claim()""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS cronjobs_jobrun_paused_claim ON cronjobs_jobrun",
    "DROP FUNCTION IF EXISTS cronjobs_jobrun_paused_claim()",
]


def run_statements(statements_by_vendor):
    def apply(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise NotImplementedError(
                f"cronjobs needs its pause trigger for {schema_editor.connection.vendor}; "
                "only PostgreSQL and SQLite are supported."
            )
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return apply


class Migration(migrations.Migration):
    dependencies = [("cronjobs", "0005_pause_retries_output")]

    operations = [
        migrations.RunPython(
            run_statements({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            run_statements({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRES_REVERSE}),
        ),
    ]
