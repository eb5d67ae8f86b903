"""Recomputing the email key of every customer, for the data migrations that change ``crm.models.email_key``.

Used by 0004 (the key column, filled) and 0007 (IDNA domains). Django's loader skips this module (its name
starts with ``_``). When two customers would share a key, nothing is changed and the migration stops, naming
them, so that a person decides which address to keep: the unique index would refuse the second one anyway.
"""

import crm.models

MAX_NAMED = 20  # clashes named in the message; the count says how many there are
RULE = "NFKC + case folding, the domain under IDNA"  # what crm.models.email_key does, for the message


def recompute_email_keys(Customer, *, migration: str) -> int:
    """Write ``email_key(email)`` where it differs from the stored key; the number of rows changed.

    Raises RuntimeError naming the customers (pk and email) of each key two of them would share.
    """
    owners: dict[str, list[tuple[int, str]]] = {}
    changed = []
    for customer in Customer.objects.only("pk", "email", "email_key").order_by("pk").iterator(chunk_size=2000):
        key = crm.models.email_key(customer.email)
        owners.setdefault(key, []).append((customer.pk, customer.email))
        if customer.email_key != key:
            customer.email_key = key
            changed.append(customer)
    clashes = [found for found in owners.values() if len(found) > 1]
    if clashes:
        listed = "; ".join(" = ".join(f"customer {pk} <{email}>" for pk, email in found) for found in clashes[:MAX_NAMED])
        raise RuntimeError(
            f"crm {migration}: {len(clashes)} email(s) belong to more than one customer once normalised "
            f"({RULE}): {listed}. Change or archive-and-rename all but one of each, then migrate again."
        )
    # No row takes a key another still holds: email_key is idempotent, so the key a row would take from
    # another row is that row's new key too, and that is a clash, refused above.
    Customer.objects.bulk_update(changed, ["email_key"], batch_size=500)
    return len(changed)
