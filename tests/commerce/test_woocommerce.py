"""WooCommerce order webhooks: signature, ping, status → mail, one mail per (store, kind, order)."""

from __future__ import annotations

from tests.commerce.conftest import Shop, fixture


def test_order_status_changes_send_one_mail_each(shop: Shop) -> None:
    # GIVEN an order created as pending (unpaid), then processing twice (order.created and order.updated), completed
    # and refunded, each a separate delivery, and one delivery repeated
    assert shop.woo("order.created", fixture("woocommerce", "order_pending"), "d1")[0] == 200
    assert shop.woo("order.updated", fixture("woocommerce", "order_processing"), "d2")[1]["status"] == "queued"
    assert shop.woo("order.updated", fixture("woocommerce", "order_processing"), "d2")[1]["status"] == "duplicate"
    shop.woo("order.updated", fixture("woocommerce", "order_processing"), "d3")
    shop.woo("order.updated", fixture("woocommerce", "order_completed"), "d4")
    shop.woo("order.updated", fixture("woocommerce", "order_refunded"), "d5")
    shop.process()
    # THEN pending sent nothing, and confirmation, shipping and refund went out once each
    mails = {m["template"]: m["request"] for m in shop.mails()}
    assert sorted(mails) == ["order_confirmation", "refund", "shipping_confirmation"]
    assert len(shop.mails()) == 3
    confirmation = mails["order_confirmation"]
    assert confirmation["to"] == [{"email": "joerg.mueller@example.de", "name": "Jörg Müller"}]
    assert confirmation["subject"] == "Order #727 confirmed — thank you, Jörg!"
    assert "Ship Your Idea" in confirmation["html"]
    assert "Black, M Test" in confirmation["html"]
    assert "€29.35" in confirmation["html"]
    assert "Hauptstraße 12" in confirmation["text"]
    assert mails["refund"]["subject"] == "Refund of €29.35 for order #727"
    assert "Out of stock" in mails["refund"]["text"]


def test_signature_and_ping(shop: Shop) -> None:
    body = fixture("woocommerce", "order_processing")
    headers = {"X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Delivery-ID": "x"}
    status, reply = shop.post("woocommerce", "demo-woo", body, headers, secret="not-the-secret")
    assert (status, reply["error"]["field"]) == (401, "X-WC-Webhook-Signature")
    # WooCommerce activates a webhook only after its unsigned ping is answered with 200
    status, reply = shop.post(
        "woocommerce", "demo-woo", b"webhook_id=12", {"Content-Type": "application/x-www-form-urlencoded"}, secret=None
    )
    assert (status, reply) == (200, {"status": "pong"})
    assert shop.process() == []
