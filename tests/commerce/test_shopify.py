"""Shopify order webhooks: HMAC gate, delivery dedupe, one mail per (store, kind, order), refunds, abandoned carts."""

from __future__ import annotations

import json

from postroom.commerce.signatures import sign
from tests.commerce.conftest import SECRET, Shop, fixture


def test_order_webhook_delivered_three_times_sends_one_confirmation(shop: Shop) -> None:
    # GIVEN Shopify's documented orders/create payload
    body = fixture("shopify", "orders_create")
    # WHEN Shopify delivers it three times (its retries keep the webhook id)
    answers = [shop.shopify("orders/create", body, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043") for _ in range(3)]
    # THEN the first is queued and the others are answered as duplicates, all with 200
    assert [(status, reply["status"]) for status, reply in answers] == [
        (200, "queued"),
        (200, "duplicate"),
        (200, "duplicate"),
    ]
    assert len(shop.process()) == 1
    # and one order confirmation exists, rendered from the built-in template with the order's data
    (mail,) = shop.mails()
    request = mail["request"]
    assert mail["template"] == "order_confirmation"
    assert request["from"] == {"email": "orders@shop.example", "name": "Demo Shop"}
    assert request["to"] == [{"email": "jon@example.com", "name": "John Smith"}]
    assert request["subject"] == "Order #9999 confirmed — thank you, John!"
    assert "IPod Nano - 8GB" in request["html"]
    assert "$403.00" in request["html"]
    assert "123 Shipping Street" in request["text"]
    assert request["metadata"] == {"store": "demo-shopify", "order": "820982911946154508"}


def test_the_same_order_under_another_webhook_id_is_still_one_mail(shop: Shop) -> None:
    # GIVEN the order's confirmation was sent
    body = fixture("shopify", "orders_create")
    shop.shopify("orders/create", body, "delivery-1")
    # WHEN the same event arrives as a different delivery (a second subscription, a manual resend)
    assert shop.shopify("orders/create", body, "delivery-2")[1]["status"] == "queued"
    shop.process()
    # THEN the (store, kind, order) key keeps it to one mail
    assert len(shop.mails()) == 1


def test_bad_signature_is_401_and_unknown_store_404(shop: Shop) -> None:
    body = fixture("shopify", "orders_create")
    status, reply = shop.post("shopify", "demo-shopify", body, {"X-Shopify-Topic": "orders/create"}, secret="wrong")
    assert status == 401
    assert reply["error"]["field"] == "X-Shopify-Hmac-Sha256"
    assert shop.post("shopify", "demo-shopify", body, {"X-Shopify-Topic": "orders/create"}, secret=None)[0] == 401
    # a signature over other bytes than those received (the JSON re-serialised) does not verify either
    reformatted = json.dumps(json.loads(body)).encode()
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": sign(body, SECRET)}
    assert shop.post("shopify", "demo-shopify", reformatted, headers, secret=None)[0] == 401
    assert shop.shopify("orders/create", body, "x", store="nope")[0] == 404
    # a WooCommerce store is not reachable on the Shopify path
    assert shop.shopify("orders/create", body, "x", store="demo-woo")[0] == 404
    assert shop.process() == []


def test_fulfilled_cancelled_and_refund_mails(shop: Shop) -> None:
    # GIVEN an order that is created, fulfilled, refunded (twice delivered) and cancelled
    shop.shopify("orders/create", fixture("shopify", "orders_create"), "w1")
    shop.shopify("orders/fulfilled", fixture("shopify", "orders_fulfilled"), "w2")
    shop.shopify("refunds/create", fixture("shopify", "refunds_create"), "w3")
    shop.shopify("refunds/create", fixture("shopify", "refunds_create"), "w3-again")
    shop.shopify("orders/cancelled", fixture("shopify", "orders_cancelled"), "w4")
    shop.process()
    mails = {m["template"]: m["request"] for m in shop.mails()}
    # THEN each kind of mail went out once, personalised
    assert sorted(mails) == ["order_cancelled", "order_confirmation", "refund", "shipping_confirmation"]
    assert "1Z2345" in mails["shipping_confirmation"]["html"]
    assert "https://www.ups.com/WebTracking" in mails["shipping_confirmation"]["text"]
    # the refund webhook has no customer: the order remembered from orders/create supplies the address
    assert mails["refund"]["to"][0]["email"] == "jon@example.com"
    assert mails["refund"]["subject"] == "Refund of $199.00 for order #9999"
    assert "Item arrived damaged" in mails["refund"]["text"]
    assert "(customer)" in mails["order_cancelled"]["text"]


def test_abandoned_checkout_is_reminded_and_the_reminder_cancelled_by_the_order(shop: Shop) -> None:
    # GIVEN a checkout with an email and no order
    shop.shopify("checkouts/create", fixture("shopify", "checkouts_create"), "c1")
    shop.process()
    (reminder,) = shop.mails()
    # THEN a reminder is scheduled, with the cart and the link back to it
    assert reminder["status"] == "scheduled"
    assert reminder["template"] == "abandoned_checkout"
    assert "checkouts/cd9d2a5e1b47e0a0a6f5e3b4c2d1f0e9/recover" in reminder["request"]["html"]
    assert reminder["request"]["subject"] == "John, you left something in your cart"
    # WHEN the same checkout is updated again (same version) nothing new is scheduled
    shop.shopify("checkouts/update", fixture("shopify", "checkouts_create"), "c2")
    shop.process()
    assert len(shop.mails()) == 1
    # WHEN the order that completes it arrives
    shop.shopify("orders/create", fixture("shopify", "orders_create"), "o1")
    shop.process()
    # THEN the reminder is cancelled, and a later checkout update schedules nothing
    by_template = {m["template"]: m for m in shop.mails()}
    assert by_template["abandoned_checkout"]["status"] == "cancelled"
    assert by_template["order_confirmation"]["status"] == "queued"
    newer = json.loads(fixture("shopify", "checkouts_create"))
    newer["updated_at"] = "2022-01-01T10:00:00-05:00"
    shop.shopify("checkouts/update", json.dumps(newer).encode(), "c3")
    shop.process()
    assert len(shop.mails()) == 2


def test_a_newer_cart_replaces_the_reminder(shop: Shop) -> None:
    shop.shopify("checkouts/create", fixture("shopify", "checkouts_create"), "c1")
    newer = json.loads(fixture("shopify", "checkouts_create"))
    newer["updated_at"] = "2022-01-01T10:00:00-05:00"
    newer["line_items"][0]["quantity"] = 3
    newer["line_items"][0]["line_price"] = "597.00"
    shop.shopify("checkouts/update", json.dumps(newer).encode(), "c2")
    shop.process()
    first, second = shop.mails()
    assert (first["status"], second["status"]) == ("cancelled", "scheduled")
    assert "$597.00" in second["request"]["html"]
