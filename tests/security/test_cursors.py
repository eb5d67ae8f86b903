"""Finding 4: forged cursors. A cursor is base64 of `arrayconnection:<n>`, so a client can send any n."""

import pytest
from graphql_relay import offset_to_cursor

from tests.crm.gql_helpers import error_codes, ok, post
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

PAGE = "{{ allProducts({arguments}) {{ {extra} edges {{ node {{ name }} }} }} }}"


def page(client, arguments, extra=""):
    return post(client, PAGE.format(arguments=arguments, extra=extra))


@pytest.mark.parametrize("extra", ["", "totalCount"], ids=["forward-page", "counted-page"])
@pytest.mark.parametrize("argument", ["after", "before"])
class TestForgedCursors:
    @pytest.mark.parametrize("position", [-2, -1, -(10**20)])
    def test_negative_position_is_not_a_cursor(self, client, argument, extra, position):
        ProductFactory.create_batch(3)
        status, body = page(client, f'last: 2, {argument}: "{offset_to_cursor(position)}"', extra)
        assert status == 200 and error_codes(body) == ["bad_user_input"], body
        assert body["errors"][0]["message"] == f"'{argument}' is not a cursor from this connection."

    @pytest.mark.parametrize("position", [10_001, 10**20])  # 10**20: "bigint out of range" before the fix
    def test_position_past_the_offset_limit_is_refused(self, client, argument, extra, position):
        status, body = page(client, f'{argument}: "{offset_to_cursor(position)}"', extra)
        assert status == 200 and error_codes(body) == ["bad_user_input"], body
        assert body["errors"][0]["message"] == (
            f"'{argument}' points at item {position}; the limit is 10000. Narrow the filter to page deeper."
        )


def test_cursor_plus_offset_obeys_the_offset_limit(client):
    status, body = page(client, f'offset: 10000, after: "{offset_to_cursor(1)}"')
    assert (
        error_codes(body) == ["bad_user_input"]
        and "points at item 10001; the limit is 10000" in body["errors"][0]["message"]
    )


def test_cursor_past_the_last_item_within_the_limit_is_an_empty_page(client):
    ProductFactory.create_batch(3)
    for extra in ("", "totalCount"):
        data = ok(client, PAGE.format(arguments=f'after: "{offset_to_cursor(10_000)}"', extra=extra))
        assert data["allProducts"]["edges"] == []
