"""Hostile strings (issue 12, findings 5, 6, 13): lone surrogates, control characters, look-alike
digits and emails that Python and the database used to fold differently."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm import services
from crm.models import Customer, Product
from tests.crm.gql_helpers import ALL_CRM_PERMISSIONS, error_codes, logged_in, ok, post, staff

pytestmark = pytest.mark.django_db

CREATE_CUSTOMER = """mutation($name: String!, $email: String!, $phone: String) {
  createCustomer(input: {name: $name, email: $email, phone: $phone}) {
    customer { id } message errors fieldErrors { field code } } }"""
BULK = """mutation($rows: [CustomerInput!]!) {
  bulkCreateCustomers(input: $rows) { customers { email } errors fieldErrors { field code index } } }"""
CREATE_PRODUCT = """mutation($name: String!) {
  createProduct(input: {name: $name, price: 1}) { product { id } errors fieldErrors { field code } } }"""


@pytest.fixture
def client():
    # staff: cronJobRuns is for staff
    return logged_in(staff(*ALL_CRM_PERMISSIONS, "cronjobs.view_jobrun", username="clerk"))


# --- Finding 5 and "Strings and digits": every text input refuses what no database can store ------

HOSTILE_TEXT = [
    ("\ud800", "lone_surrogate"),  # JSON "\ud800": the driver raised UnicodeEncodeError (internal error)
    ("\udfff tail", "lone_surrogate"),
    ("A\x00", "null_characters_not_allowed"),
    ("bell\x07", "control_character"),
    ("esc\x1b[31m", "control_character"),
    ("next\x85line", "control_character"),
]


@pytest.mark.parametrize(("text", "code"), HOSTILE_TEXT)
def test_hostile_name_is_a_payload_error_naming_the_field(client, text, code):
    data = ok(client, CREATE_CUSTOMER, {"name": text, "email": "a@example.com"})["createCustomer"]
    assert data["customer"] is None
    assert data["fieldErrors"] == [{"field": "name", "code": code}]
    assert data["errors"][0].startswith("name: ")
    data = ok(client, CREATE_PRODUCT, {"name": text})["createProduct"]
    assert data["fieldErrors"] == [{"field": "name", "code": code}]
    assert not Customer.objects.exists() and not Product.objects.exists()


@pytest.mark.parametrize(("text", "code"), HOSTILE_TEXT)
def test_hostile_row_is_reported_and_the_valid_rows_created(client, text, code):
    rows = [{"name": "Ok", "email": "ok@example.com"}, {"name": text, "email": "bad@example.com"}]
    data = ok(client, BULK, {"rows": rows})["bulkCreateCustomers"]
    assert data["customers"] == [{"email": "ok@example.com"}]
    assert data["fieldErrors"] == [{"field": "name", "code": code, "index": 1}]


def test_lone_surrogate_in_email_and_phone_is_a_payload_error(client):
    data = ok(client, CREATE_CUSTOMER, {"name": "A", "email": "a\ud800@example.com", "phone": "+1234567\ud800"})
    fields = {error["field"] for error in data["createCustomer"]["fieldErrors"]}
    assert fields == {"email", "phone"}
    assert not Customer.objects.exists()


def test_lone_surrogate_written_in_the_document_is_refused_cleanly(client):
    status, body = post(
        client, 'mutation { createCustomer(input: {name: "\\ud800", email: "a@example.com"}) { errors } }'
    )
    assert status in (200, 400) and "internal_error" not in error_codes(body)
    if status == 200 and body.get("data"):
        assert body["data"]["createCustomer"]["errors"][0].startswith("name: ")
    assert not Customer.objects.exists()


@pytest.mark.parametrize(
    ("query", "entry"),
    [
        ("query($s: String) { allCustomers(filter: {nameIcontains: $s}) { totalCount } }", "filter.nameIcontains"),
        ("query($s: String) { allProducts(filter: {nameIcontains: $s}) { totalCount } }", "filter.nameIcontains"),
        ("query($s: String) { allOrders(filter: {customerName: $s}) { totalCount } }", "filter.customerName"),
        ("query($s: String) { cronJobRuns(filter: {jobName: $s}) { totalCount } }", "filter.jobName"),
    ],
)
@pytest.mark.parametrize("text", ["\ud800", "x\x07"])
def test_hostile_filter_value_is_a_user_error_naming_the_filter(client, query, entry, text):
    status, body = post(client, query, {"s": text})
    assert error_codes(body) == ["bad_user_input"], body
    assert f"{entry}: " in body["errors"][0]["message"]


@pytest.mark.parametrize("phone", ["+١٢٣٤٥٦٧٨٩", "+۱۲۳۴۵۶۷۸۹", "+１２３４５６７８９", "١٢٣-٤٥٦-٧٨٩٠"])
def test_phone_digits_are_ascii(client, phone):
    # Finding 13: \d matched Arabic-Indic (and full-width) digits, so these were stored as valid.
    data = ok(client, CREATE_CUSTOMER, {"name": "A", "email": "a@example.com", "phone": phone})["createCustomer"]
    assert data["fieldErrors"] == [{"field": "phone", "code": "invalid_phone"}]
    assert not Customer.objects.exists()


# --- Finding 6: one email normalisation for validation and the unique index -----------------------

EMAIL_PAIRS = [
    # (first, second, same customer?)
    ("t@ix.com", "t@İx.com", False),  # İ folds to i + combining dot: another domain (IDNA agrees)
    ("t@ix.com", "T@IX.COM", True),
    ("a@straße.de", "A@STRASSE.DE", True),  # full case folding: ß = ss
    ("a@straẞe.de", "a@strasse.de", True),  # capital sharp s
    ("tı@x.com", "ti@x.com", False),  # dotless ı is its own letter
    ("tı@x.com", "TI@x.com", False),
    ("t@ｘ.com", "t@x.com", True),  # full-width letters are their ASCII selves (NFKC)
    ("a@éx.com", "A@ÉX.COM", True),  # SQLite's LOWER() left these apart
    ("k@x.com", "\u212a@x.com", True),  # KELVIN SIGN
    # Issue 24, F10: the domain under IDNA (UTS #46): an A-label is the domain it spells.
    ("x@bücher.de", "x@xn--bcher-kva.de", True),
    ("X@XN--BCHER-KVA.DE", "x@BÜCHER.de", True),
    ("a@xn--strae-oqa.de", "a@strasse.de", True),  # the A-label of straße: ß = ss, as in the Unicode spelling
    ("x@xn--bcher-kva.de", "x@bucher.de", False),
    ("x@xn--bcher-kva.de", "xn--bcher-kva@x.de", False),  # only the domain is IDNA
    ("x@I\u2764.ws", "x@i\u2764.ws", True),  # a domain IDNA 2008 refuses (an emoji) keeps its folded spelling
    ("x@i\u2764.ws", "x@xn--i-7iq.ws", False),  # so its A-label is not decoded to it
    ("x@XN--ZZZZ.de", "x@xn--zzzz.de", True),  # ...as does an A-label that decodes to nothing
]


@pytest.mark.parametrize(("first", "second", "same"), EMAIL_PAIRS)
def test_bulk_create_agrees_with_the_database_and_keeps_the_valid_rows(client, first, second, same):
    rows = [
        {"name": "One", "email": first},
        {"name": "Two", "email": second},
        {"name": "Three", "email": "third@example.com"},
    ]
    status, body = post(client, BULK, {"rows": rows})
    assert status == 200 and "errors" not in body, body  # never an IntegrityError (internal error)
    data = body["data"]["bulkCreateCustomers"]
    created = [row["email"] for row in data["customers"]]
    if same:
        assert created == [first, "third@example.com"]
        assert data["errors"] == ["row 1: email: Duplicate email in this batch"]
    else:
        assert created == [first, second, "third@example.com"] and data["errors"] == []
    assert Customer.objects.count() == len(created)


@pytest.mark.parametrize(("first", "second", "same"), EMAIL_PAIRS)
def test_create_customer_uses_the_same_normalisation(client, first, second, same):
    ok(client, CREATE_CUSTOMER, {"name": "One", "email": first})
    data = ok(client, CREATE_CUSTOMER, {"name": "Two", "email": second})["createCustomer"]
    assert data["errors"] == (["email: Email already exists"] if same else [])
    assert Customer.objects.count() == (1 if same else 2)
    # A second batch meets the stored customers the same way.
    result = services.bulk_create_customers(rows=[{"name": "Again", "email": second}])
    assert [str(error) for error in result.errors] == ["row 0: email: Email already exists"]


@pytest.mark.parametrize(("first", "second", "same"), [pair for pair in EMAIL_PAIRS if pair[2]])
def test_the_database_index_refuses_what_validation_refuses(first, second, same):
    Customer.objects.bulk_create([Customer(name="One", email=first)])
    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.bulk_create([Customer(name="Two", email=second)])


def test_an_email_taken_between_check_and_insert_is_reported_not_crashed(monkeypatch):
    # The race the unique index decides: another request inserts the email after our check.
    Customer.objects.create(name="Other", email="taken@example.com")
    checks = []

    def check_too_early(keys):
        checks.append(keys)
        return set() if len(checks) == 1 else real_check(keys)

    real_check = services._existing_email_keys
    monkeypatch.setattr(services, "_existing_email_keys", check_too_early)
    # 200 rows first: on SQLite Django INSERTs them in batches, the clash is in a later one.
    rows = [{"name": f"N{i}", "email": f"n{i}@example.com"} for i in range(200)]
    result = services.bulk_create_customers(rows=[*rows, {"name": "A", "email": "TAKEN@example.com"}])
    assert [str(error) for error in result.errors] == ["row 200: email: Email already exists"]
    assert len(result.customers) == 200 and Customer.objects.count() == 201
    assert {c.pk for c in result.customers} == set(Customer.objects.exclude(name="Other").values_list("pk", flat=True))

    monkeypatch.setattr(Customer, "validate_constraints", lambda self, exclude=None: None)
    with pytest.raises(ValidationError) as exc:
        services.create_customer(name="C", email="Taken@Example.com")
    assert exc.value.message_dict == {"email": ["Email already exists"]}
