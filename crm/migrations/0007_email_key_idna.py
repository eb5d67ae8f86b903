"""Email keys with the domain under IDNA (issue 24, F10): ``x@xn--bcher-kva.de`` is ``x@bücher.de``.

Recomputes the key of every customer (``crm.models.email_key``). If two customers now share one (the same
address, once in Unicode and once as an A-label), nothing is changed and the migration stops, naming them,
as 0004 did, so that a person decides which address to keep.
"""

from django.db import migrations

from crm.migrations._email_keys import recompute_email_keys


def idna_email_keys(apps, schema_editor):
    recompute_email_keys(apps.get_model("crm", "Customer"), migration="0007")


class Migration(migrations.Migration):
    dependencies = [("crm", "0006_order_total_once_per_order")]

    operations = [migrations.RunPython(idna_email_keys, migrations.RunPython.noop)]
