"""A realistic sample order for previewing the built-in order templates (the console's template editor).

The sample is a Shopify ``orders/create`` payload - two items, a discount, shipping, tax, a fulfilment with tracking,
a refund - passed through the same :func:`~postroom.commerce.orders.shopify_actions` mapping real webhooks go through,
so the preview shows exactly the variables (and their formats) a real order mail gets, never a hand-made dictionary
that could drift from them.
"""

from __future__ import annotations

from typing import Any

from postroom.commerce.orders import Mail, RememberOrder, shopify_actions
from postroom.commerce.stores import Platform, Store

# The built-ins that an order (or checkout) fills; any other template previews with the variables the user types.
ORDER_TEMPLATES = frozenset(
    {"order_confirmation", "shipping_confirmation", "order_cancelled", "refund", "abandoned_checkout"}
)

_STORE = Store(
    id="sample-shop",
    platform=Platform.SHOPIFY,
    sender="Sample Shop <orders@shop.example>",
    shop_name="Sample Shop",
    support_email="help@shop.example",
)

_ADDRESS = {
    "first_name": "Ann",
    "last_name": "Lee",
    "company": None,
    "address1": "12 Harbour Street",
    "address2": "Flat 3",
    "city": "Bristol",
    "zip": "BS1 4RN",
    "province": "",
    "province_code": "",
    "country": "United Kingdom",
    "country_code": "GB",
}

_ORDER: dict[str, Any] = {
    "id": 5012345678901,
    "name": "#1042",
    "order_number": 1042,
    "email": "ann.lee@example.org",
    "created_at": "2026-11-28T10:15:00+00:00",
    "currency": "GBP",
    "customer_locale": "en-GB",
    "taxes_included": True,
    "subtotal_price": "84.00",
    "total_discounts": "6.00",
    "total_tax": "15.33",
    "total_price": "91.99",
    "order_status_url": "https://shop.example/orders/1042/status",
    "customer": {"first_name": "Ann", "last_name": "Lee", "email": "ann.lee@example.org"},
    "line_items": [
        {"title": "Linen shirt", "variant_title": "M / Sand", "sku": "LIN-M-SND", "quantity": 2, "price": "30.00"},
        {"title": "Canvas tote", "variant_title": "", "sku": "TOTE-01", "quantity": 1, "price": "30.00"},
    ],
    "discount_codes": [{"code": "WELCOME10", "amount": "6.00", "type": "fixed_amount"}],
    "shipping_lines": [{"title": "Standard", "price": "7.99", "discounted_price": "7.99"}],
    "shipping_address": _ADDRESS,
    "billing_address": _ADDRESS,
    "fulfillments": [
        {
            "tracking_company": "Royal Mail",
            "tracking_number": "RM123456785GB",
            "tracking_url": "https://track.example/RM123456785GB",
        }
    ],
    "cancel_reason": "customer",
}

_REFUND = {
    "amount": "30.00",
    "reason": "Returned unworn",
    "line_items": [
        {"title": "Canvas tote", "variant": "", "sku": "TOTE-01", "quantity": 1, "price": "30.00", "total": "30.00"}
    ],
}


def sample_variables(template: str) -> dict[str, Any]:
    """The variables an order mail of this kind would get for the sample order; ``{}`` for other templates."""
    if template not in ORDER_TEMPLATES:
        return {}
    actions = shopify_actions("orders/create", _ORDER, _STORE)
    assert isinstance(actions, list)  # orders/create always maps to actions
    remembered = next(a for a in actions if isinstance(a, RememberOrder | Mail))
    variables: dict[str, Any] = dict(remembered.variables)
    order = dict(variables["order"])
    if template == "refund":
        order["refund"] = _REFUND
    if template == "abandoned_checkout":
        order["checkout_url"] = "https://shop.example/checkouts/c1f9e2/recover"
    variables["order"] = order
    return variables
