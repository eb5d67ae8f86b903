"""Issue 24, F7, F9 and F11: one text rule for every stored text, and decimals bounded in digits.

F7: pause reasons skipped the text rule: NUL was an internal_error on PostgreSQL, a lone surrogate
echoed a codec error, CR/LF was stored and shown. F11: U+2028/U+2029 and bidi controls were accepted
in names (a product name could forge a log line for any reader splitting on Unicode line
boundaries). F9: a decimal filter value with 16,384+ fractional digits was an internal_error with a
traceback logged per request.
"""

import pytest

from crm.models import Product
from cronjobs.models import JobPause
from tests.crm.gql_helpers import error_codes, logged_in, post, staff

pytestmark = pytest.mark.django_db

PAUSE = 'mutation($reason: String) { pauseCronJob(name: "noop", reason: $reason) { errors fieldErrors { code } } }'
CREATE = (
    "mutation($name: String!) { createProduct(input: {name: $name, price: 1}) { product { id } "
    "fieldErrors { field code } } }"
)


@pytest.fixture
def operator(settings):
    settings.CRONJOBS = [("0 * * * *", "tests.cronjobs.health_jobs.noop", {"name": "noop"})]
    return logged_in(staff("cronjobs.view_jobrun", "cronjobs.pause_job"))


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("vendor\x00down", "Null characters are not allowed."),
        ("vendor\ud800down", "Unpaired surrogates are not allowed (U+D800)."),
        ("vendor down\r\n2026-12-07 FAKE: resumed", "Control characters are not allowed (U+000D)."),
        ("vendor\u2028down", "Line separators are not allowed (U+2028)."),
    ],
)
def test_pause_reasons_follow_the_text_rule(operator, reason, says):
    status, body = post(operator, PAUSE, {"reason": reason})
    assert status == 200, body  # finding 7: internal_error (NUL on PostgreSQL), a codec error, or stored
    assert body["data"]["pauseCronJob"]["errors"] == [f"reason: the reason: {says}"]
    assert not JobPause.objects.exists()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Lamp\u2028 2026-12-07 12:00:00 - FAKE: new stock 999", "line_separator"),
        ("La\u2029mp", "line_separator"),  # at an end, strip() removes it
        ("Lamp\u202e", "bidi_control"),
        ("Lamp\u2066x\u2069", "bidi_control"),
    ],
)
def test_names_refuse_line_separators_and_bidi_controls(client, name, code):
    status, body = post(client, CREATE, {"name": name})
    assert status == 200 and body["data"]["createProduct"]["fieldErrors"] == [{"field": "name", "code": code}]
    assert not Product.objects.exists()


@pytest.mark.parametrize("digits", [51, 16_400])
def test_a_decimal_filter_with_too_many_digits_is_the_clients_mistake(client, settings, caplog, digits):
    settings.GRAPHQL_MAX_VARIABLE_STRING = settings.GRAPHQL_MAX_BODY_BYTES  # the value itself, not its length
    value = "0." + "1" * digits
    query = "query($v: Decimal) { allOrders(filter: {totalAmountGte: $v}) { totalCount } }"
    status, body = post(client, query, {"v": value})
    assert "internal_error" not in error_codes(body), body  # finding 9
    assert status == 400 and "at most 50" in body["errors"][0]["message"]
    assert not [record for record in caplog.records if record.exc_info]  # no traceback in the log
