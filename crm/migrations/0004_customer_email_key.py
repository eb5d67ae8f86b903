"""The email key column, filled for every customer (0005 makes it the unique index).

The unique index moves from LOWER(email), which SQLite and PostgreSQL compute differently from
Python (``İ``, ``É`` ...), to a column the application computes with ``crm.models.email_key``.
Existing customers get their key here; if two of them share one (possible before: SQLite's
LOWER() left ``É`` and ``é`` apart), nothing is changed and the migration stops, naming them,
so that a person decides which address to keep.
"""

from django.db import migrations

import crm.models
from crm.migrations._email_keys import recompute_email_keys


def fill_email_keys(apps, schema_editor):
    recompute_email_keys(apps.get_model("crm", "Customer"), migration="0004")


class Migration(migrations.Migration):
    dependencies = [("crm", "0003_prohibit_nul_in_names")]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="email_key",
            field=crm.models.EmailKeyField(
                default="", editable=False, help_text="email_key(email): unique.", max_length=254
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_email_keys, migrations.RunPython.noop),
    ]
