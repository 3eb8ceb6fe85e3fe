"""Platform payloads → the variables the order templates use, and → what to do about each webhook.

Variables, the same for both platforms (every key is always present, so templates can test them):

    shop      name, support_email
    customer  first_name, last_name, name, email
    order     id, name ("#1001"), number, currency, created_at, line_items [title, variant, sku, quantity, price,
              total], subtotal, discount, shipping, tax, total (decimal strings; shipping/tax may be None),
              shipping_address / billing_address ({lines: [...]} or None), tracking [company, number, url],
              refund ({amount, reason, line_items} or None), cancel_reason, checkout_url, status_url

Each webhook becomes a list of actions; :mod:`postroom.commerce.order_mailer` carries them out. A mail action carries
the
key that makes it happen once: (store, mail kind, order id) - plus the refund id for refunds, and the checkout's
last update for reminders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from postroom.commerce.stores import Store

Json = dict[str, Any]


@dataclass(frozen=True)
class Mail:
    kind: str  # the template: order_confirmation, shipping_confirmation, refund, order_cancelled
    key: str
    email: str
    variables: Json


@dataclass(frozen=True)
class RememberOrder:
    """Keep the order's variables: a Shopify refund webhook carries neither the customer nor the addresses."""

    order_id: str
    email: str
    variables: Json


@dataclass(frozen=True)
class RefundMail:
    order_id: str
    refund_id: str
    refund: Json  # amount, reason, line_items


@dataclass(frozen=True)
class Reminder:
    """Schedule the abandoned-checkout reminder (replacing an earlier one for the same checkout)."""

    token: str
    version: str  # the checkout's updated_at: a newer cart gets a new reminder
    updated_at: str
    email: str
    variables: Json


@dataclass(frozen=True)
class CheckoutDone:
    """The checkout became an order: cancel its reminder, and never schedule one again."""

    token: str


Action = Mail | RememberOrder | RefundMail | Reminder | CheckoutDone


@dataclass
class Ignored:
    reason: str
    actions: list[Action] = field(default_factory=list)


def _money(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return f"{Decimal(str(value)):.2f}"
    except InvalidOperation:
        return None


def _sum(values: list[Any]) -> str:
    total = Decimal("0")
    for value in values:
        try:
            total += Decimal(str(value))
        except InvalidOperation:
            continue
    return f"{total:.2f}"


def _address(data: Json | None, *, line1: str, line2: str, zip_key: str, province: str) -> Json | None:
    if not data or not any(data.get(k) for k in (line1, "city", "country")):
        return None
    name = " ".join(part for part in (data.get("first_name"), data.get("last_name")) if part) or data.get("name")
    city = " ".join(part for part in (data.get(zip_key), data.get("city")) if part)
    lines = [name, data.get("company"), data.get(line1), data.get(line2), city, data.get(province), data.get("country")]
    return {"lines": [str(line) for line in lines if line]}


def _customer(first: str, last: str, email: str) -> Json:
    return {"first_name": first, "last_name": last, "name": " ".join(p for p in (first, last) if p), "email": email}


def shop_variables(store: Store) -> Json:
    return {"name": store.shop_name, "support_email": store.support_email}


def _order_shape(**values: Any) -> Json:
    base: Json = {
        "id": "",
        "name": "",
        "number": "",
        "currency": "",
        "created_at": None,
        "line_items": [],
        "subtotal": "0.00",
        "discount": "0.00",
        "shipping": None,
        "tax": None,
        "total": "0.00",
        "shipping_address": None,
        "billing_address": None,
        "tracking": [],
        "refund": None,
        "cancel_reason": None,
        "checkout_url": None,
        "status_url": None,
    }
    base.update(values)
    return base


# --- Shopify ---------------------------------------------------------------------------------------------------------


def _shopify_items(items: list[Json]) -> list[Json]:
    rows = []
    for item in items:
        quantity = int(item.get("quantity") or 0)
        price = _money(item.get("price")) or "0.00"
        total = _money(item.get("line_price")) or f"{Decimal(price) * quantity:.2f}"
        rows.append(
            {
                "title": item.get("title") or item.get("name") or "",
                "variant": item.get("variant_title") or "",
                "sku": item.get("sku") or "",
                "quantity": quantity,
                "price": price,
                "total": total,
            }
        )
    return rows


def _shopify_address(data: Json | None) -> Json | None:
    return _address(data, line1="address1", line2="address2", zip_key="zip", province="province")


def _shopify_people(payload: Json) -> tuple[str, Json]:
    customer = payload.get("customer") or {}
    fallback = payload.get("billing_address") or payload.get("shipping_address") or {}
    email = payload.get("email") or payload.get("contact_email") or customer.get("email") or ""
    first = customer.get("first_name") or fallback.get("first_name") or ""
    last = customer.get("last_name") or fallback.get("last_name") or ""
    return email, _customer(first, last, email)


def shopify_order(payload: Json) -> Json:
    shipping_set = ((payload.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount")
    shipping = _money(shipping_set) or (
        _sum([line.get("price") for line in payload.get("shipping_lines") or []])
        if payload.get("shipping_lines")
        else None
    )
    tracking = [
        {"company": f.get("tracking_company"), "number": f.get("tracking_number"), "url": f.get("tracking_url")}
        for f in payload.get("fulfillments") or []
        if f.get("tracking_number") or f.get("tracking_url")
    ]
    return _order_shape(
        id=str(payload["id"]),
        name=payload.get("name") or f"#{payload.get('order_number', payload['id'])}",
        number=str(payload.get("order_number") or payload.get("number") or ""),
        currency=payload.get("currency") or "",
        created_at=payload.get("created_at"),
        line_items=_shopify_items(payload.get("line_items") or []),
        subtotal=_money(payload.get("subtotal_price")) or "0.00",
        discount=_money(payload.get("total_discounts")) or "0.00",
        shipping=shipping,
        tax=_money(payload.get("total_tax")),
        total=_money(payload.get("total_price")) or "0.00",
        shipping_address=_shopify_address(payload.get("shipping_address")),
        billing_address=_shopify_address(payload.get("billing_address")),
        tracking=tracking,
        cancel_reason=payload.get("cancel_reason"),
        status_url=payload.get("order_status_url"),
    )


def _shopify_refund(payload: Json) -> Json:
    amount = _sum(
        [
            t.get("amount")
            for t in payload.get("transactions") or []
            if t.get("kind") == "refund" and t.get("status") in (None, "success")
        ]
    )
    items = []
    for row in payload.get("refund_line_items") or []:
        line = row.get("line_item") or {}
        items.append(
            {
                "title": line.get("title") or line.get("name") or "",
                "variant": line.get("variant_title") or "",
                "sku": line.get("sku") or "",
                "quantity": int(row.get("quantity") or 0),
                "price": _money(line.get("price")) or "0.00",
                "total": _money(row.get("subtotal")) or "0.00",
            }
        )
    if Decimal(amount) == 0 and items:
        amount = _sum([item["total"] for item in items])
    return {"amount": amount, "reason": payload.get("note") or "", "line_items": items}


def shopify_actions(topic: str, payload: Json, store: Store) -> list[Action] | Ignored:
    if topic in ("orders/create", "orders/fulfilled", "orders/cancelled"):
        email, customer = _shopify_people(payload)
        order = shopify_order(payload)
        variables = {"shop": shop_variables(store), "customer": customer, "order": order}
        actions: list[Action] = [RememberOrder(order["id"], email, variables)]
        kind = {
            "orders/create": "order_confirmation",
            "orders/fulfilled": "shipping_confirmation",
            "orders/cancelled": "order_cancelled",
        }[topic]
        if email:
            actions.append(Mail(kind, f"{store.id}:{kind}:{order['id']}", email, variables))
        if topic == "orders/create" and payload.get("checkout_token"):
            actions.append(CheckoutDone(str(payload["checkout_token"])))
        return actions
    if topic == "refunds/create":
        return [RefundMail(str(payload["order_id"]), str(payload["id"]), _shopify_refund(payload))]
    if topic in ("checkouts/create", "checkouts/update"):
        token = str(payload.get("token") or payload.get("id"))
        if payload.get("completed_at"):
            return [CheckoutDone(token)]
        email, customer = _shopify_people(payload)
        if not email:
            return Ignored("the checkout has no email address yet")
        order = _order_shape(
            id=token,
            currency=payload.get("currency") or payload.get("presentment_currency") or "",
            created_at=payload.get("created_at"),
            line_items=_shopify_items(payload.get("line_items") or []),
            subtotal=_money(payload.get("subtotal_price")) or "0.00",
            discount=_money(payload.get("total_discounts")) or "0.00",
            tax=_money(payload.get("total_tax")),
            total=_money(payload.get("total_price")) or "0.00",
            shipping_address=_shopify_address(payload.get("shipping_address")),
            checkout_url=payload.get("abandoned_checkout_url"),
        )
        updated = str(payload.get("updated_at") or payload.get("created_at") or "")
        variables = {"shop": shop_variables(store), "customer": customer, "order": order}
        return [Reminder(token, updated, updated, email, variables)]
    return Ignored(f"topic {topic!r} sends no mail")


# --- WooCommerce -----------------------------------------------------------------------------------------------------

# Order status → the mail it means (WooCommerce sends order.updated on every change; the key keeps each mail single).
WOO_STATUS_MAIL = {
    "processing": "order_confirmation",
    "completed": "shipping_confirmation",
    "refunded": "refund",
    "cancelled": "order_cancelled",
}


def _woo_address(data: Json | None) -> Json | None:
    return _address(data, line1="address_1", line2="address_2", zip_key="postcode", province="state")


def woocommerce_order(payload: Json) -> Json:
    items = []
    for item in payload.get("line_items") or []:
        quantity = int(item.get("quantity") or 0)
        variant = ", ".join(
            str(meta.get("display_value") or meta.get("value"))
            for meta in item.get("meta_data") or []
            if isinstance(meta, dict) and not str(meta.get("key", "_")).startswith("_")
        )
        items.append(
            {
                "title": item.get("name") or "",
                "variant": variant,
                "sku": item.get("sku") or "",
                "quantity": quantity,
                "price": _money(item.get("price")) or "0.00",
                "total": _money(item.get("total")) or "0.00",
            }
        )
    refunds = payload.get("refunds") or []
    refund = None
    if refunds:
        refund = {
            "amount": _sum([abs(Decimal(str(r.get("total") or "0"))) for r in refunds]),
            "reason": "; ".join(r.get("reason") for r in refunds if r.get("reason")),
            "line_items": [],
        }
    return _order_shape(
        id=str(payload["id"]),
        name=f"#{payload.get('number') or payload['id']}",
        number=str(payload.get("number") or payload["id"]),
        currency=payload.get("currency") or "",
        created_at=payload.get("date_created_gmt") or payload.get("date_created"),
        line_items=items,
        subtotal=_sum([item.get("subtotal") for item in payload.get("line_items") or []]),
        discount=_money(payload.get("discount_total")) or "0.00",
        shipping=_money(payload.get("shipping_total")),
        tax=_money(payload.get("total_tax")),
        total=_money(payload.get("total")) or "0.00",
        shipping_address=_woo_address(payload.get("shipping")),
        billing_address=_woo_address(payload.get("billing")),
        refund=refund,
    )


def woocommerce_actions(topic: str, payload: Json, store: Store) -> list[Action] | Ignored:
    if topic not in ("order.created", "order.updated"):
        return Ignored(f"topic {topic!r} sends no mail")
    kind = WOO_STATUS_MAIL.get(str(payload.get("status")))
    if kind is None:
        return Ignored(f"order status {payload.get('status')!r} sends no mail")
    billing = payload.get("billing") or {}
    email = billing.get("email") or ""
    if not email:
        return Ignored("the order has no billing email")
    order = woocommerce_order(payload)
    if kind == "refund" and order["refund"] is None:
        order["refund"] = {"amount": order["total"], "reason": "", "line_items": []}
    customer = _customer(billing.get("first_name") or "", billing.get("last_name") or "", email)
    variables = {"shop": shop_variables(store), "customer": customer, "order": order}
    return [Mail(kind, f"{store.id}:{kind}:{order['id']}", email, variables)]
