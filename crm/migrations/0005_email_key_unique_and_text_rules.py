"""One email normalisation for validation and the unique index (on email_key); text and phone rules.

Separate from 0004: PostgreSQL refuses to alter a table in the transaction that updated its rows
while foreign-key checks on them are still pending.
"""

import django.core.validators
from django.db import migrations, models

import alx_backend_graphql_crm.validation


class Migration(migrations.Migration):
    dependencies = [("crm", "0004_customer_email_key")]

    operations = [
        migrations.RemoveConstraint(model_name="customer", name="crm_customer_email_ci_unique"),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                fields=("email_key",),
                name="crm_customer_email_key_unique",
                violation_error_message="Email already exists",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="name",
            field=models.CharField(max_length=255, validators=[alx_backend_graphql_crm.validation.validate_text]),
        ),
        migrations.AlterField(
            model_name="customer",
            name="email",
            field=models.EmailField(max_length=254, validators=[alx_backend_graphql_crm.validation.validate_text]),
        ),
        migrations.AlterField(
            model_name="customer",
            name="phone",
            field=models.CharField(
                blank=True,
                default="",
                max_length=20,
                validators=[
                    alx_backend_graphql_crm.validation.validate_text,
                    django.core.validators.RegexValidator(
                        code="invalid_phone",
                        message="Enter a valid phone number: + and 7 to 15 digits, or 123-456-7890.",
                        regex="^(\\+[0-9]{7,15}|[0-9]{3}-[0-9]{3}-[0-9]{4})$",
                    ),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="product",
            name="name",
            field=models.CharField(max_length=255, validators=[alx_backend_graphql_crm.validation.validate_text]),
        ),
    ]
