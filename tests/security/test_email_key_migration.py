"""Issue 24, F10: `x@bücher.de` and `x@xn--bcher-kva.de` were two customers. Migration crm 0007 recomputes
the stored email keys with the domain under IDNA; when two customers turn out to be one address it changes
nothing and stops, naming them (as 0004 did for case). Run through Django's migration executor, on SQLite
and PostgreSQL."""

import unicodedata

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from hypothesis import given
from hypothesis import strategies as st

from crm.models import Customer, email_key

BEFORE, IDNA = ("crm", "0006_order_total_once_per_order"), ("crm", "0007_email_key_idna")


def migrate(target: tuple[str, str]):
    """Migrate crm to ``target``; the apps of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return MigrationExecutor(connection).loader.project_state([target]).apps


def pre_idna_key(email: str) -> str:
    """The key crm 0004 stored: NFKC and case folding of the whole address."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold())


@pytest.fixture
def customers_before_0007(transactional_db):
    """A function adding customers as the database held them before 0007 (keys without IDNA); crm is at 0006
    until the test migrates it, and at its latest migration afterwards."""
    apps = migrate(BEFORE)
    historical = apps.get_model("crm", "Customer")

    def add(*emails: str) -> list[int]:
        pks = []
        for email in emails:
            # Saving computes today's key (EmailKeyField), which may clash: the row is written as 0004 left it.
            pk = historical.objects.create(name=email.split("@")[0], email=f"{len(pks)}@placeholder.invalid").pk
            historical.objects.filter(pk=pk).update(email=email, email_key=pre_idna_key(email))
            pks.append(pk)
        return pks

    try:
        yield add
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("crm"))


def stored_keys() -> dict[str, str]:
    return dict(Customer.objects.values_list("email", "email_key"))


def applied(migration: tuple[str, str]) -> bool:
    return migration in MigrationRecorder(connection).applied_migrations()


def test_the_keys_are_recomputed_and_the_index_then_refuses_the_other_spelling(customers_before_0007):
    customers_before_0007("x@xn--bcher-kva.de", "Ana@Example.com", "a@xn--strae-oqa.de")
    migrate(IDNA)
    assert stored_keys() == {
        "x@xn--bcher-kva.de": "x@bücher.de",
        "Ana@Example.com": "ana@example.com",
        "a@xn--strae-oqa.de": "a@strasse.de",
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.bulk_create([Customer(name="Twin", email="x@BÜCHER.de")])  # before: a second customer


def test_two_customers_that_are_one_address_stop_it_named_and_nothing_changes(customers_before_0007):
    unicode, ascii_, other = customers_before_0007("x@bücher.de", "x@xn--bcher-kva.de", "y@xn--bcher-kva.de")
    before = stored_keys()
    with pytest.raises(RuntimeError) as stopped:
        migrate(IDNA)
    assert str(stopped.value) == (
        "crm 0007: 1 email(s) belong to more than one customer once normalised (NFKC + case folding, the domain "
        f"under IDNA): customer {unicode} <x@bücher.de> = customer {ascii_} <x@xn--bcher-kva.de>. Change or "
        "archive-and-rename all but one of each, then migrate again."
    )
    assert stored_keys() == before and not applied(IDNA)  # y@xn--bcher-kva.de's key is not rewritten either

    Customer.objects.filter(pk=ascii_).update(email="x.old@xn--bcher-kva.de")  # what a person decides
    migrate(IDNA)
    assert applied(IDNA) and Customer.objects.get(pk=other).email_key == "y@bücher.de"


EMAILS = st.builds(
    "{}@{}".format,
    st.text(st.sampled_from("abkKıİß\u212a"), min_size=1, max_size=6),
    st.lists(st.sampled_from(["xn--bcher-kva", "BÜCHER", "xn--strae-oqa", "straẞe", "i\u2764", "xn--zz", "de"]))
    .filter(bool)
    .map(".".join),
)


@given(EMAILS)
def test_the_key_of_a_key_is_itself(email):
    # What 0007 relies on to rewrite keys without a transient clash on the unique index.
    assert email_key(email_key(email)) == email_key(email)
