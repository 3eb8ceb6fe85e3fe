"""The totals an order mail prints add up: each combination of tax handling, discounts, free shipping and refunds is
rendered through the real built-in template, the printed amounts are parsed back in the mail's locale, and the lines
must sum to the printed total (and the total plus refunds to the "Total now")."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.numbers import parse_decimal

from postroom.commerce.orders import Mail, shopify_actions, woocommerce_actions
from postroom.commerce.stores import Platform, Store
from postroom.mailtemplates.render import Rendered, parse_locale, render
from postroom.mailtemplates.template_store import builtin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHOPIFY = Store("demo", Platform.SHOPIFY, "Shop <orders@shop.example>", "Demo Shop")
WOO = Store("woo", Platform.WOOCOMMERCE, "Shop <orders@shop.example>", "Woo Shop")
LOCALES = ["en-US", "fr-FR", "de-DE", "ja-JP"]


class _TotalsTable(HTMLParser):
    """Rows of ``<table class="totals">`` as (row class, label, amount text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[tuple[str, str, str]] = []
        self._in_table = False
        self._row: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "table" and "totals" in classes:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._row = (" ".join(classes), [])
        elif self._row is not None and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row[1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            kind, cells = self._row
            self.rows.append((kind, cells[0], cells[1] if len(cells) > 1 else ""))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_amount(text: str, locale: str) -> Decimal:
    """A printed amount back to a number, in the locale it was printed in ("Free" shipping is zero)."""
    if text == "Free":
        return Decimal(0)
    number = re.sub(r"[^\d,.\-\u2212\s\u00a0\u202f']", "", text).replace("\u2212", "-").strip()
    return parse_decimal(number, locale=parse_locale(locale), strict=False)


def printed_totals(rendered: Rendered, locale: str) -> dict[str, Any]:
    table = _TotalsTable()
    table.feed(rendered.html)
    rows = table.rows
    assert rows, "the mail prints no totals"
    # The HTML and text parts say the same: every printed row appears, label and amount, in the text part.
    text = " ".join(rendered.text.split())
    for _, label, amount in rows:
        assert " ".join(f"{label} {amount}".split()) in text
    return {
        "lines": [parse_amount(amount, locale) for kind, _, amount in rows if kind == "line"],
        "total": next(parse_amount(amount, locale) for kind, _, amount in rows if kind == "grand"),
        "adjustments": [parse_amount(amount, locale) for kind, _, amount in rows if kind == "adjustment"],
        "net": [parse_amount(amount, locale) for kind, _, amount in rows if kind == "grand net"],
        "notes": [label for kind, label, _ in rows if kind == "note"],
        "labels": [label for kind, label, _ in rows if kind == "line"],
    }


def mail_for(platform: str, payload: dict[str, Any]) -> Mail:
    if platform == "shopify":
        actions = shopify_actions("orders/create", payload, SHOPIFY)
    else:
        actions = woocommerce_actions("order.updated", payload, WOO)
    assert isinstance(actions, list)
    return next(a for a in actions if isinstance(a, Mail))


# --- Shopify: the documented order fields, with the numbers a store of each kind produces ----------------------------
# Items: 1 × 199.00 + 2 × 99.50 = 398.00 (the fixture's line items); shipping 10.00.


def _shopify(**fields: Any) -> dict[str, Any]:
    payload = json.loads((FIXTURES / "shopify" / "orders_create.json").read_text())
    shipping = fields.pop("shipping", ("10.00", "10.00", []))
    price, discounted, allocations = shipping
    payload["shipping_lines"][0].update(
        price=price, discounted_price=discounted, discount_allocations=[{"amount": a} for a in allocations]
    )
    payload["total_shipping_price_set"] = {"shop_money": {"amount": price, "currency_code": "USD"}}
    # Nothing changed since the order was placed unless the case says so: current_* equal the originals.
    for key in ("subtotal_price", "total_discounts", "total_tax", "total_price"):
        payload[f"current_{key}"] = fields.get(key)
    payload.update(fields)
    return payload


SHOPIFY_CASES = {
    # 398 + 10 shipping + 10 % tax on 398 = 447.80
    "tax excluded": _shopify(
        taxes_included=False, subtotal_price="398.00", total_discounts="0.00", total_tax="39.80", total_price="447.80"
    ),
    # 10 % off the order (39.80): 358.20 + 10 + tax 35.82 = 404.02
    "tax excluded, discount": _shopify(
        taxes_included=False, subtotal_price="358.20", total_discounts="39.80", total_tax="35.82", total_price="404.02"
    ),
    # The reported case: prices include 20 % VAT, so subtotal_price (358.20) already has the discount and the tax in
    # it; the total is 358.20 + 10 = 368.20 and the tax (61.37) is part of it, not added to it.
    "tax included, discount": _shopify(
        taxes_included=True, subtotal_price="358.20", total_discounts="39.80", total_tax="61.37", total_price="368.20"
    ),
    # A free-shipping code: the shipping line keeps its price, the discount is allocated to it.
    "free shipping": _shopify(
        shipping=("10.00", "10.00", ["10.00"]),
        taxes_included=False,
        subtotal_price="398.00",
        total_discounts="10.00",
        total_tax="39.80",
        total_price="437.80",
    ),
    "tax included, discount, free shipping": _shopify(
        shipping=("10.00", "0.00", ["10.00"]),
        taxes_included=True,
        subtotal_price="358.20",
        total_discounts="49.80",
        total_tax="59.70",
        total_price="358.20",
    ),
    # One item (99.50 + its 9.95 tax) refunded: current_total_price says what the order comes to now.
    "tax excluded, discount, refund": _shopify(
        taxes_included=False,
        subtotal_price="358.20",
        total_discounts="39.80",
        total_tax="35.82",
        total_price="404.02",
        current_total_price="294.57",
        refunds=[{"id": 1, "transactions": [{"kind": "refund", "status": "success", "amount": "109.45"}]}],
    ),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", list(SHOPIFY_CASES))
def test_shopify_order_mail_lines_add_up_to_the_total(case: str, locale: str) -> None:
    # GIVEN a Shopify order of this kind, from a customer in this locale
    payload = copy.deepcopy(SHOPIFY_CASES[case])
    payload["customer_locale"] = locale
    # WHEN its confirmation is rendered from the built-in template
    mail = mail_for("shopify", payload)
    printed = printed_totals(render(builtin("order_confirmation").source, mail.variables), locale)
    # THEN the printed lines add up to the printed total, which is Shopify's total_price, from the documented parts
    # alone (a difference would be printed as "Other charges", the safety net for payloads that do not reconcile)
    assert sum(printed["lines"]) == printed["total"] == Decimal(payload["total_price"])
    assert "Other charges" not in printed["labels"]
    # and the items printed above add up to the Subtotal line
    assert sum(Decimal(i["total"]) for i in mail.variables["order"]["line_items"]) == printed["lines"][0]
    # and tax inside the prices is a note, never a line to add
    if payload["taxes_included"]:
        assert "Tax" not in printed["labels"]
        assert len(printed["notes"]) == 1
    else:
        assert "Tax" in printed["labels"]
    # and after a refund the total plus the refunded amount is what the order comes to now
    if payload.get("refunds"):
        assert printed["adjustments"] == [Decimal("-109.45")]
        assert printed["net"] == [printed["total"] + sum(printed["adjustments"])] == [Decimal("294.57")]
    else:
        assert printed["adjustments"] == printed["net"] == []


def test_free_shipping_prints_free_and_no_second_discount() -> None:
    # GIVEN a free-shipping code on a 10.00 shipping line (Shopify counts it in total_discounts too)
    mail = mail_for("shopify", copy.deepcopy(SHOPIFY_CASES["free shipping"]))
    rendered = render(builtin("order_confirmation").source, mail.variables)
    # THEN shipping is printed as free and the items carry no discount line that would count it twice
    assert printed_totals(rendered, "en-US")["labels"] == ["Subtotal", "Shipping", "Tax"]
    assert "Shipping Free" in rendered.text


# --- WooCommerce: the REST API's amounts are before tax, each with its tax beside it ---------------------------------


def _woo(*, include: bool, discount: bool, shipping: str = "4.20", refunds: list[dict[str, Any]] | None = None) -> dict:
    payload = json.loads((FIXTURES / "woocommerce" / "order_processing.json").read_text())
    # Two items at 10.00 before 19 % VAT; a 10 % coupon; shipping with the same VAT.
    subtotal, subtotal_tax = Decimal("20.00"), Decimal("3.80")
    line_total = subtotal * Decimal("0.9") if discount else subtotal
    line_tax = (line_total * Decimal("0.19")).quantize(Decimal("0.01"))
    ship = Decimal(shipping)
    ship_tax = (ship * Decimal("0.19")).quantize(Decimal("0.01"))
    payload["line_items"] = [
        {**payload["line_items"][0], "quantity": 2, "price": 10, "subtotal": f"{subtotal:.2f}",
         "subtotal_tax": f"{subtotal_tax:.2f}", "total": f"{line_total:.2f}", "total_tax": f"{line_tax:.2f}"}
    ]  # fmt: skip
    payload.update(
        prices_include_tax=include,
        discount_total=f"{subtotal - line_total:.2f}",
        discount_tax=f"{subtotal_tax - line_tax:.2f}",
        shipping_total=f"{ship:.2f}",
        shipping_tax=f"{ship_tax:.2f}",
        shipping_lines=[{"id": 1, "method_title": "Flat rate", "total": f"{ship:.2f}", "total_tax": f"{ship_tax:.2f}"}],
        total_tax=f"{line_tax + ship_tax:.2f}",
        total=f"{line_total + line_tax + ship + ship_tax:.2f}",
        refunds=refunds or [],
    )
    return payload


WOO_CASES = {
    "tax excluded": _woo(include=False, discount=False),
    "tax excluded, discount": _woo(include=False, discount=True),
    "tax included, discount": _woo(include=True, discount=True),
    "free shipping": _woo(include=False, discount=True, shipping="0.00"),
    "tax included, discount, refund": _woo(include=True, discount=True, refunds=[{"id": 9, "total": "-5.00"}]),
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", list(WOO_CASES))
def test_woocommerce_order_mail_lines_add_up_to_the_total(case: str, locale: str) -> None:
    payload = copy.deepcopy(WOO_CASES[case])
    store = Store("woo", Platform.WOOCOMMERCE, "Shop <orders@shop.example>", "Woo Shop", locale=locale)
    actions = woocommerce_actions("order.updated", payload, store)
    assert isinstance(actions, list)
    (mail,) = actions
    printed = printed_totals(render(builtin("order_confirmation").source, mail.variables), locale)
    assert sum(printed["lines"]) == printed["total"] == Decimal(payload["total"])
    assert "Other charges" not in printed["labels"]
    assert sum(Decimal(i["total"]) for i in mail.variables["order"]["line_items"]) == printed["lines"][0]
    if payload["prices_include_tax"]:
        # the store shows prices with tax: the subtotal is 2 × 11.90, and the tax is a note
        assert printed["lines"][0] == Decimal("23.80")
        assert "Tax" not in printed["labels"]
        assert len(printed["notes"]) == 1
    else:
        assert printed["lines"][0] == Decimal("20.00")
    if payload["refunds"]:
        assert printed["adjustments"] == [Decimal("-5.00")]
        assert printed["net"] == [printed["total"] - 5]
    if case == "free shipping":
        assert mail.variables["order"]["shipping"] == "0.00"


def test_a_payload_whose_parts_do_not_reconcile_prints_the_difference_as_its_own_line() -> None:
    # GIVEN a total with a surcharge none of the documented fields explains
    payload = copy.deepcopy(SHOPIFY_CASES["tax excluded"])
    payload["total_price"] = payload["current_total_price"] = "450.00"
    mail = mail_for("shopify", payload)
    printed = printed_totals(render(builtin("order_confirmation").source, mail.variables), "en-US")
    # THEN the mail still adds up, with the difference named rather than hidden
    assert printed["labels"][-1] == "Other charges"
    assert printed["lines"][-1] == Decimal("2.20")
    assert sum(printed["lines"]) == printed["total"] == Decimal("450.00")
