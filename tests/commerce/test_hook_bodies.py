"""Commerce hooks with a valid HMAC over legal JSON that Postroom cannot carry: a lone surrogate, a document nested
100,000 deep, a 5,000-digit integer. The signature proves who sent it, not that it is readable; each used to crash
the hooks function (a 502, which the platform retries until it disables the webhook). Each is now a structured 4xx at
the edge, and nothing is queued for the worker."""

from __future__ import annotations

import pytest

from tests.commerce.conftest import Shop, fixture

ORDER = fixture("shopify", "orders_create")
FIRST_NAME = b'"first_name": "John"'


@pytest.mark.parametrize(
    ("case", "body", "status", "code", "field"),
    [
        ("a lone surrogate", ORDER.replace(FIRST_NAME, b'"first_name": "\\ud800"', 1), 422, "validation_error",
         None),
        ("nesting 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json", "body"),
        ("a 5,000-digit integer", ORDER.replace(b"{", b'{"n": ' + b"7" * 5_000 + b", ", 1), 400, "invalid_json",
         "body"),
    ],
)  # fmt: skip
def test_a_signed_shopify_hook_with_unreadable_json_is_a_structured_4xx(
    shop: Shop, case: str, body: bytes, status: int, code: str, field: str | None
) -> None:
    # GIVEN a Shopify delivery, correctly signed, whose JSON holds <case>  WHEN it arrives
    answer_status, answer = shop.shopify("orders/create", body, "delivery-1")
    # THEN a structured 4xx, and nothing reaches the worker
    assert (answer_status, answer["error"]["code"]) == (status, code), answer
    assert answer["error"]["message"]
    if field is not None:
        assert answer["error"]["field"] == field
    assert shop.process() == []


def test_the_lone_surrogate_is_located(shop: Shop) -> None:
    body = ORDER.replace(FIRST_NAME, b'"first_name": "\\udfff"', 1)
    assert body != ORDER
    _, answer = shop.shopify("orders/create", body, "delivery-1")
    assert answer["error"]["field"].endswith("first_name"), answer


def test_a_signed_woocommerce_hook_with_a_lone_surrogate_is_422(shop: Shop) -> None:
    status, answer = shop.woo("order.created", b'{"id": 1, "billing": {"first_name": "\\ud800"}}', "delivery-1")
    assert (status, answer["error"]["field"]) == (422, "billing.first_name"), answer
    assert shop.process() == []
