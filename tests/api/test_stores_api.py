"""``/v1/stores`` through the real send API handler against moto (issue 19 item 3): what ``postroom stores add`` did
with AWS credentials, over HTTP, scoped to the key's tenant, answering the webhook URL to paste into the shop."""

from __future__ import annotations

from postroom.core.auth import Scope
from postroom.wiring.commerce_services import commerce_services
from tests.conftest import Stack, create_key

SHOP = {
    "id": "my-shop",
    "platform": "shopify",
    "secret": "shpss_0123456789abcdef",
    "sender": "Shop <orders@shop.example>",
    "locale": "de-DE",
}


def test_a_created_store_answers_its_webhook_url_keeps_its_secret_and_is_listed_without_it(stack: Stack) -> None:
    # WHEN an admin key adds a Shopify store
    status, created = stack.request("POST", "/v1/stores", SHOP, headers={"Host": "api.shop.test"})
    # THEN the answer names the URL to paste into Shopify, and holds everything but the secret
    assert status == 201, created
    assert created["webhook_url"] == "http://api.shop.test/v1/hooks/shopify/my-shop"
    assert created["tenant"] == "default"
    assert created["shop_name"] == "my-shop"
    assert created["locale"] == "de-DE"
    assert SHOP["secret"] not in str(created)
    # AND the secret is where the hook function checks signatures with it
    assert commerce_services().stores.secret("my-shop") == SHOP["secret"]
    # AND the listing and the store itself show it, never the secret
    status, listing = stack.request("GET", "/v1/stores")
    assert status == 200
    assert [s["id"] for s in listing["data"]] == ["my-shop"]
    assert SHOP["secret"] not in str(listing)
    status, shown = stack.request("GET", "/v1/stores/my-shop")
    assert status == 200
    assert shown["sender"] == SHOP["sender"]
    # AND adding it again replaces it (200) with the new secret
    status, replaced = stack.request("POST", "/v1/stores", {**SHOP, "secret": "a-new-secret-value"})
    assert status == 200, replaced
    assert commerce_services().stores.secret("my-shop") in {SHOP["secret"], "a-new-secret-value"}  # cached 5 min


def test_another_tenants_store_is_invisible_and_its_id_cannot_be_taken(stack: Stack) -> None:
    assert stack.request("POST", "/v1/stores", SHOP)[0] == 201
    other = create_key(frozenset({Scope.STORES_MANAGE, Scope.MESSAGES_SEND}), tenant="other")
    status, body = stack.request("GET", "/v1/stores/my-shop", key=other)
    assert status == 404, body
    assert body["error"]["field"] == "store_id"
    assert stack.request("GET", "/v1/stores", key=other)[1] == {"data": []}
    status, body = stack.request("POST", "/v1/stores", {**SHOP, "secret": "hijacked-secret"}, key=other)
    assert status == 409, body
    assert body["error"] == {**body["error"], "code": "conflict", "field": "id"}
    assert commerce_services().stores.get("my-shop").tenant == "default"  # type: ignore[union-attr]


def test_a_key_without_the_scope_or_with_a_bad_store_is_refused_with_the_field_named(stack: Stack) -> None:
    sender_only = create_key(frozenset({Scope.MESSAGES_SEND}))
    status, body = stack.request("POST", "/v1/stores", SHOP, key=sender_only)
    assert status == 403, body
    assert body["error"]["field"] == "Authorization"
    status, body = stack.request("POST", "/v1/stores", {**SHOP, "id": "My Shop"})
    assert status == 422, body
    status, body = stack.request("POST", "/v1/stores", {**SHOP, "sender": "not an address"})
    assert status == 422, body
    assert body["error"]["field"] == "sender"
    assert stack.request("GET", "/v1/stores")[1] == {"data": []}  # nothing half-made
