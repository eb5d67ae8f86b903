"""The email key column, filled for every customer (0005 makes it the unique index).

The unique index moves from LOWER(email), which SQLite and PostgreSQL compute differently from
Python (``İ``, ``É`` ...), to a column the application computes with ``crm.models.email_key``.
Existing customers get their key here; if two of them share one (possible before: SQLite's
LOWER() left ``É`` and ``é`` apart), nothing is changed and the migration stops, naming them,
so that a person decides which address to keep.
"""

from django.db import migrations

import crm.models


def fill_email_keys(apps, schema_editor):
    Customer = apps.get_model("crm", "Customer")
    owners: dict[str, list[tuple[int, str]]] = {}
    customers = list(Customer.objects.only("pk", "email").order_by("pk"))
    for customer in customers:
        customer.email_key = crm.models.email_key(customer.email)
        owners.setdefault(customer.email_key, []).append((customer.pk, customer.email))
    clashes = {key: found for key, found in owners.items() if len(found) > 1}
    if clashes:
        listed = "; ".join(
            " = ".join(f"customer {pk} <{email}>" for pk, email in found) for found in list(clashes.values())[:20]
        )
        raise RuntimeError(
            f"crm 0004: {len(clashes)} email(s) belong to more than one customer once normalised "
            f"(NFKC + case folding): {listed}. Change or archive-and-rename all but one of each, then migrate again."
        )
    Customer.objects.bulk_update(customers, ["email_key"], batch_size=500)


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
