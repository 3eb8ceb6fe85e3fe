"""Platform payloads → the variables the order templates use, and → what to do about each webhook.

Variables, the same for both platforms (every key is always present, so templates can test them):

    shop      name, support_email
    customer  first_name, last_name, name, email
    order     id, name ("#1001"), number, currency, locale (a CLDR tag such as "fr_FR", for the money and date
              filters), created_at, line_items [title, variant, sku, quantity, price, total (price × quantity,
              before discounts)], subtotal (the items' sum, before discounts), discount (positive), shipping (after
              shipping discounts; None when nothing ships), tax, taxes_included, total, totals, net_total,
              shipping_address / billing_address ({lines: [...]} or None), tracking [company, number, url],
              refund ({amount, reason, line_items} or None), cancel_reason, checkout_url, status_url

Totals (decimal strings) follow each platform's own arithmetic so that what a mail prints adds up:
``totals`` is the list of signed lines [{kind, amount}] whose sum is ``total`` (kinds: subtotal, discount, shipping,
tax, duties, tip, fees, other); in a tax-inclusive store tax is part of the prices, so it is not a line but a note
under the total. ``adjustments`` are the signed lines after the total (refunded, changes) and ``net_total`` what the
order comes to after them (None when there are none).

Each webhook becomes a list of actions; :mod:`postroom.commerce.order_mailer` carries them out. A mail action carries
the
key that makes it happen once: (store, mail kind, order id) - plus the refund id for refunds, and the checkout's
last update for reminders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger
from babel import Locale, UnknownLocaleError

from postroom.commerce.postal_addresses import PostalAddress, address_lines
from postroom.commerce.stores import Store
from postroom.mailtemplates.render import parse_locale

logger = Logger(child=True)

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


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _cents(value: Decimal) -> str:
    return f"{value:.2f}"


def _set_amount(payload: Json, key: str) -> Decimal | None:
    """A Shopify ``*_set`` field's amount in the shop's currency (the one ``currency`` names)."""
    return _decimal(((payload.get(key) or {}).get("shop_money") or {}).get("amount"))


def _totals(
    *,
    subtotal: Decimal,
    discount: Decimal,
    shipping: Decimal | None,
    tax: Decimal | None,
    taxes_included: bool,
    extras: dict[str, Decimal],
    total: Decimal,
    adjustments: list[tuple[str, Decimal]],
    order_id: str,
) -> Json:
    """The order's printed lines, which add up to its total by construction.

    A platform's total is the authority (it is what the customer paid). If the documented parts do not add up to it
    (an unknown surcharge, a platform's rounding), the difference is printed as its own line rather than leaving a
    mail whose lines contradict its total.
    """
    lines: list[tuple[str, Decimal]] = [("subtotal", subtotal)]
    if discount:
        lines.append(("discount", -discount))
    if shipping is not None:
        lines.append(("shipping", shipping))
    if tax is not None and not taxes_included:
        lines.append(("tax", tax))
    lines += [(kind, amount) for kind, amount in extras.items() if amount]
    rest = total - sum((amount for _, amount in lines), Decimal(0))
    if rest:
        logger.warning("order lines do not add up to its total", extra={"order": order_id, "difference": str(rest)})
        lines.append(("other", rest))
    after = [(kind, amount) for kind, amount in adjustments if amount]
    return {
        "subtotal": _cents(subtotal),
        "discount": _cents(discount),
        "shipping": None if shipping is None else _cents(shipping),
        "tax": None if tax is None else _cents(tax),
        "taxes_included": taxes_included,
        "total": _cents(total),
        "totals": [{"kind": kind, "amount": _cents(amount)} for kind, amount in lines],
        "adjustments": [{"kind": kind, "amount": _cents(amount)} for kind, amount in after],
        "net_total": _cents(total + sum((a for _, a in after), Decimal(0))) if after else None,
    }


def _locale(tag: Any, country: Any, fallback: str) -> str:
    """The mail's locale: the customer's language, made regional with the address's country when CLDR has that pair.

    Shopify's ``customer_locale`` is often a bare language ("fr"), while number formats are regional (fr-CH groups
    digits differently from fr-FR). Without a customer locale the store's own locale applies.
    """
    if not tag:
        return str(parse_locale(fallback or None))
    base = parse_locale(str(tag))
    if not base.territory and isinstance(country, str) and len(country) == 2:
        try:
            return str(Locale(base.language, country.upper()))
        except (UnknownLocaleError, ValueError):
            pass
    return str(base)


def _address_lines(address: PostalAddress | None, locale: str) -> Json | None:
    if address is None:
        return None
    return {"lines": address_lines(address, parse_locale(locale))}


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
        "locale": str(parse_locale(None)),
        "created_at": None,
        "line_items": [],
        "subtotal": "0.00",
        "discount": "0.00",
        "shipping": None,
        "tax": None,
        "taxes_included": False,
        "total": "0.00",
        "totals": [],
        "adjustments": [],
        "net_total": None,
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


def order_defaults(order: Json) -> Json:
    """An order's variables with every key present (those remembered before a key was added lack it)."""
    return _order_shape(**order)


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


def _shopify_address(data: Json | None) -> PostalAddress | None:
    if not data or not any(data.get(k) for k in ("address1", "city", "country")):
        return None
    name = " ".join(part for part in (data.get("first_name"), data.get("last_name")) if part) or data.get("name")
    code = str(data.get("province_code") or "")
    # Where a country writes its states as codes (US "CA", Canada "QC") Shopify's province_code is that code; JP's
    # codes are ISO ones ("JP-13"), which no Japanese address uses, so the prefecture's name is printed instead.
    area = code if code.isalpha() and len(code) <= 3 else str(data.get("province") or "")
    return PostalAddress(
        country_code=str(data.get("country_code") or ""),
        name=str(name or ""),
        company=str(data.get("company") or ""),
        street=tuple(str(line) for line in (data.get("address1"), data.get("address2")) if line),
        city=str(data.get("city") or ""),
        area=area,
        postcode=str(data.get("zip") or ""),
        country_name=str(data.get("country") or ""),
    )


def _shopify_people(payload: Json) -> tuple[str, Json]:
    customer = payload.get("customer") or {}
    fallback = payload.get("billing_address") or payload.get("shipping_address") or {}
    email = payload.get("email") or payload.get("contact_email") or customer.get("email") or ""
    first = customer.get("first_name") or fallback.get("first_name") or ""
    last = customer.get("last_name") or fallback.get("last_name") or ""
    return email, _customer(first, last, email)


def _shopify_shipping(payload: Json) -> Decimal | None:
    """What the customer pays for shipping: each shipping line's price less its discounts (a free-shipping code)."""
    lines = payload.get("shipping_lines")
    if not lines:
        # total_shipping_price_set is before shipping discounts, which are then part of total_discounts.
        return _set_amount(payload, "total_shipping_price_set")
    total = Decimal(0)
    for line in lines:
        price = _decimal(line.get("price")) or Decimal(0)
        allocated = sum(
            (_decimal(a.get("amount")) or Decimal(0) for a in line.get("discount_allocations") or []), Decimal(0)
        )
        # discounted_price is after the line's own discounts; the allocations cover discounts applied to it from the
        # order. Depending on the discount's kind either one carries it, never both, so the lower of the two is it.
        discounted = _decimal(line.get("discounted_price"))
        net = price - allocated
        total += min(net, discounted) if discounted is not None else net
    return total


def _shopify_totals(payload: Json, items: list[Json], order_id: str) -> Json:
    """Shopify's arithmetic: ``total_price = subtotal_price + shipping + tax (unless included) + duties + tip``.

    ``subtotal_price`` is after line and order discounts (and includes tax in a tax-inclusive store, as the item
    prices do), so the discount printed is what separates the items' sum from it; shipping discounts are in the
    shipping line. ``current_total_price`` reflects refunds, returns and order edits since the order was placed: the
    difference is printed after the total, with what the order comes to now.
    """
    subtotal = sum((Decimal(item["total"]) for item in items), Decimal(0))
    total = _decimal(payload.get("total_price")) or Decimal(0)
    after_discounts = _decimal(payload.get("subtotal_price"))
    if after_discounts is None:
        after_discounts = subtotal - (_decimal(payload.get("total_discounts")) or Decimal(0))
    extras = {
        "duties": _set_amount(payload, "original_total_duties_set") or Decimal(0),
        "fees": _set_amount(payload, "original_total_additional_fees_set") or Decimal(0),
        "tip": _decimal(payload.get("total_tip_received")) or Decimal(0),
    }
    current = _decimal(payload.get("current_total_price"))
    change = Decimal(0) if current is None else current - total
    kind = "refunded" if payload.get("refunds") else "changes"
    return _totals(
        subtotal=subtotal,
        discount=subtotal - after_discounts,
        shipping=_shopify_shipping(payload),
        tax=_decimal(payload.get("total_tax")),
        taxes_included=bool(payload.get("taxes_included")),
        extras=extras,
        total=total,
        adjustments=[(kind, change)],
        order_id=order_id,
    )


def _shopify_locale(payload: Json, store: Store) -> str:
    address = payload.get("shipping_address") or payload.get("billing_address") or {}
    return _locale(payload.get("customer_locale"), address.get("country_code"), store.locale)


def shopify_order(payload: Json, store: Store) -> Json:
    tracking = [
        {"company": f.get("tracking_company"), "number": f.get("tracking_number"), "url": f.get("tracking_url")}
        for f in payload.get("fulfillments") or []
        if f.get("tracking_number") or f.get("tracking_url")
    ]
    order_id = str(payload["id"])
    items = _shopify_items(payload.get("line_items") or [])
    locale = _shopify_locale(payload, store)
    return _order_shape(
        id=order_id,
        name=payload.get("name") or f"#{payload.get('order_number', payload['id'])}",
        number=str(payload.get("order_number") or payload.get("number") or ""),
        currency=payload.get("currency") or "",
        locale=locale,
        created_at=payload.get("created_at"),
        line_items=items,
        **_shopify_totals(payload, items, order_id),
        shipping_address=_address_lines(_shopify_address(payload.get("shipping_address")), locale),
        billing_address=_address_lines(_shopify_address(payload.get("billing_address")), locale),
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
        order = shopify_order(payload, store)
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
        items = _shopify_items(payload.get("line_items") or [])
        locale = _shopify_locale(payload, store)
        order = _order_shape(
            id=token,
            currency=payload.get("currency") or payload.get("presentment_currency") or "",
            locale=locale,
            created_at=payload.get("created_at"),
            line_items=items,
            **_shopify_totals(payload, items, token),
            shipping_address=_address_lines(_shopify_address(payload.get("shipping_address")), locale),
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


def _woo_address(data: Json | None) -> PostalAddress | None:
    if not data or not any(data.get(k) for k in ("address_1", "city", "country")):
        return None
    name = " ".join(part for part in (data.get("first_name"), data.get("last_name")) if part)
    return PostalAddress(
        country_code=str(data.get("country") or ""),  # WooCommerce sends the ISO code here
        name=name,
        company=str(data.get("company") or ""),
        street=tuple(str(line) for line in (data.get("address_1"), data.get("address_2")) if line),
        city=str(data.get("city") or ""),
        area=str(data.get("state") or ""),
        postcode=str(data.get("postcode") or ""),
    )


def _woo_locale(payload: Json, store: Store) -> str:
    # WooCommerce orders carry no customer language; WPML (the common multilingual plugin) records it in meta_data.
    language = next(
        (
            meta.get("value")
            for meta in payload.get("meta_data") or []
            if isinstance(meta, dict) and meta.get("key") == "wpml_language" and isinstance(meta.get("value"), str)
        ),
        None,
    )
    country = (payload.get("shipping") or {}).get("country") or (payload.get("billing") or {}).get("country")
    return _locale(language, country, store.locale)


def _woo_amount(row: Json, key: str, tax_key: str, included: bool) -> Decimal:
    """A WooCommerce amount as the store shows it: the REST API sends amounts before tax, with their tax apart."""
    amount = _decimal(row.get(key)) or Decimal(0)
    return amount + (_decimal(row.get(tax_key)) or Decimal(0)) if included else amount


def _woo_totals(payload: Json, items: list[Json], order_id: str) -> Json:
    """WooCommerce's arithmetic: ``total = Σ line subtotals - discount_total + shipping_total + fees + total_tax``.

    With ``prices_include_tax`` the store shows prices with tax, so each part is printed with its own tax
    (``subtotal_tax``, ``discount_tax``, ``shipping_tax``, the fee's ``total_tax``) and the tax is a note under the
    total instead of a line. Refunds are listed after the total (WooCommerce keeps ``total`` as placed).
    """
    included = bool(payload.get("prices_include_tax"))
    subtotal = sum((Decimal(item["total"]) for item in items), Decimal(0))
    shipping = None
    if payload.get("shipping_lines"):
        shipping = _woo_amount(payload, "shipping_total", "shipping_tax", included)
    fees = sum((_woo_amount(fee, "total", "total_tax", included) for fee in payload.get("fee_lines") or []), Decimal(0))
    refunded = sum((abs(_decimal(r.get("total")) or Decimal(0)) for r in payload.get("refunds") or []), Decimal(0))
    return _totals(
        subtotal=subtotal,
        discount=_woo_amount(payload, "discount_total", "discount_tax", included),
        shipping=shipping,
        tax=_decimal(payload.get("total_tax")),
        taxes_included=included,
        extras={"fees": fees},
        total=_decimal(payload.get("total")) or Decimal(0),
        adjustments=[("refunded", -refunded)],
        order_id=order_id,
    )


def woocommerce_order(payload: Json, store: Store) -> Json:
    included = bool(payload.get("prices_include_tax"))
    items = []
    for item in payload.get("line_items") or []:
        quantity = int(item.get("quantity") or 0)
        variant = ", ".join(
            str(meta.get("display_value") or meta.get("value"))
            for meta in item.get("meta_data") or []
            if isinstance(meta, dict) and not str(meta.get("key", "_")).startswith("_")
        )
        # The row shows the line before order discounts (its subtotal), like the Subtotal line the rows add up to.
        line = _woo_amount(item, "subtotal", "subtotal_tax", included)
        items.append(
            {
                "title": item.get("name") or "",
                "variant": variant,
                "sku": item.get("sku") or "",
                "quantity": quantity,
                "price": _cents(line / quantity) if quantity else _money(item.get("price")) or "0.00",
                "total": _cents(line),
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
    order_id = str(payload["id"])
    locale = _woo_locale(payload, store)
    return _order_shape(
        id=order_id,
        name=f"#{payload.get('number') or payload['id']}",
        number=str(payload.get("number") or payload["id"]),
        currency=payload.get("currency") or "",
        locale=locale,
        created_at=payload.get("date_created_gmt") or payload.get("date_created"),
        line_items=items,
        **_woo_totals(payload, items, order_id),
        shipping_address=_address_lines(_woo_address(payload.get("shipping")), locale),
        billing_address=_address_lines(_woo_address(payload.get("billing")), locale),
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
    order = woocommerce_order(payload, store)
    if kind == "refund" and order["refund"] is None:
        order["refund"] = {"amount": order["total"], "reason": "", "line_items": []}
    customer = _customer(billing.get("first_name") or "", billing.get("last_name") or "", email)
    variables = {"shop": shop_variables(store), "customer": customer, "order": order}
    return [Mail(kind, f"{store.id}:{kind}:{order['id']}", email, variables)]
