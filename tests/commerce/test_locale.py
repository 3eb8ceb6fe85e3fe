"""Order mails in the customer's locale: money and dates from CLDR (Babel), addresses laid out per country."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

import pytest

from postroom.commerce.orders import Mail, shopify_actions, woocommerce_actions
from postroom.commerce.stores import Platform, Store
from postroom.mailtemplates.render import date, money, render
from postroom.mailtemplates.template_store import builtin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHOPIFY = Store("demo", Platform.SHOPIFY, "Shop <orders@shop.example>", "Demo Shop")
NBSP, NNBSP = "\u00a0", "\u202f"


@pytest.mark.parametrize(
    ("locale", "eur", "jpy", "usd"),
    [
        ("en-US", "€1,234.50", "¥1,200", "$403.00"),
        ("fr-FR", f"1{NNBSP}234,50{NBSP}€", f"1{NNBSP}200{NBSP}JPY", f"403,00{NBSP}$US"),
        ("de-DE", f"1.234,50{NBSP}€", f"1.200{NBSP}¥", f"403,00{NBSP}$"),
        ("ja-JP", "€1,234.50", "￥1,200", "$403.00"),
    ],
)
def test_money_follows_the_locale(locale: str, eur: str, jpy: str, usd: str) -> None:
    # CLDR decides the symbol, its side, the separators and the currency's digits (the yen has none)
    assert money("1234.5", "EUR", locale) == eur
    assert money("1200", "JPY", locale) == jpy
    assert money("403", "USD", locale) == usd


def test_unknown_or_missing_locale_falls_back_to_english() -> None:
    assert money("1234.5", "EUR", "xx-QQ") == money("1234.5", "EUR", None) == "€1,234.50"
    assert money("1234.5", "EUR", "not a locale!") == "€1,234.50"


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en-US", "January 5, 2022"), ("fr-FR", "5 janvier 2022"), ("de-DE", "5. Januar 2022"), ("ja-JP", "2022年1月5日")],
)
def test_dates_follow_the_locale_in_the_orders_own_offset(locale: str, expected: str) -> None:
    # 23:10 in New York is already the 6th in UTC; the customer ordered on the 5th
    assert date("2022-01-05T23:10:00-05:00", locale) == expected


def _order(customer_locale: str, address: dict, currency: str = "EUR") -> dict:
    payload = json.loads((FIXTURES / "shopify" / "orders_create.json").read_text())
    payload.update(customer_locale=customer_locale, currency=currency, shipping_address=address)
    return payload


def _mail(payload: dict) -> Mail:
    actions = shopify_actions("orders/create", payload, SHOPIFY)
    assert isinstance(actions, list)
    return next(a for a in actions if isinstance(a, Mail))


def test_a_french_customer_reads_french_amounts_dates_and_country_names() -> None:
    # GIVEN an order from a customer whose Shopify locale is the bare language "fr", shipping to France
    address = {"first_name": "Amélie", "last_name": "Poulain", "address1": "15 rue des Trois Frères",
               "city": "Paris", "zip": "75018", "country": "France", "country_code": "FR"}  # fmt: skip
    mail = _mail(_order("fr", address))
    rendered = render(builtin("order_confirmation").source, mail.variables)
    # THEN the locale is made regional from the address, and money, date and address follow it
    assert mail.variables["order"]["locale"] == "fr_FR"
    html = unescape(rendered.html)  # the CSS inliner writes the no-break spaces as &nbsp;
    assert f"403,00{NBSP}€" in html
    assert "€403.00" not in html
    assert "31 décembre 2021" in html
    assert mail.variables["order"]["shipping_address"]["lines"] == [
        "Amélie Poulain", "15 rue des Trois Frères", "75018 Paris", "France",
    ]  # fmt: skip


def test_woocommerce_uses_the_store_locale() -> None:
    payload = json.loads((FIXTURES / "woocommerce" / "order_processing.json").read_text())
    store = Store("woo", Platform.WOOCOMMERCE, "Shop <orders@shop.example>", "Woo Shop", locale="de-DE")
    (mail,) = woocommerce_actions("order.updated", payload, store)
    assert isinstance(mail, Mail)
    rendered = render(builtin("order_confirmation").source, mail.variables)
    assert f"29,35{NBSP}€" in unescape(rendered.html)
    assert mail.variables["order"]["shipping_address"]["lines"] == ["Jörg Müller", "Hauptstraße 12", "10115 Berlin",
                                                                    "Deutschland"]  # fmt: skip


ADDRESSES = {
    "US": (
        {"first_name": "Ann", "last_name": "Lee", "company": "ACME", "address1": "1 Market St", "address2": "Suite 200",
         "city": "San Francisco", "province": "California", "province_code": "CA", "zip": "94103",
         "country": "United States", "country_code": "US"},
        ["Ann Lee", "ACME", "1 Market St", "Suite 200", "San Francisco, CA 94103", "United States"],
    ),
    "CA": (
        {"first_name": "Luc", "last_name": "Roy", "address1": "1000 rue Sherbrooke O", "city": "Montréal",
         "province": "Quebec", "province_code": "QC", "zip": "H3A 3G4", "country": "Canada", "country_code": "CA"},
        ["Luc Roy", "1000 rue Sherbrooke O", "Montréal QC H3A 3G4", "Canada"],
    ),
    "GB": (
        {"first_name": "Jane", "last_name": "Doe", "address1": "10 Downing Street", "city": "London",
         "province": "England", "province_code": "ENG", "zip": "SW1A 2AA", "country": "United Kingdom",
         "country_code": "GB"},
        ["Jane Doe", "10 Downing Street", "London", "SW1A 2AA", "United Kingdom"],
    ),
    "DE": (
        {"first_name": "Jörg", "last_name": "Müller", "address1": "Hauptstraße 12", "city": "Berlin",
         "province": "Berlin", "province_code": "BE", "zip": "10115", "country": "Germany", "country_code": "DE"},
        ["Jörg Müller", "Hauptstraße 12", "10115 Berlin", "Germany"],
    ),
    "FR": (
        {"first_name": "Amélie", "last_name": "Poulain", "company": "Café des 2 Moulins",
         "address1": "15 rue Lepic", "city": "Paris", "zip": "75018", "country": "France", "country_code": "FR"},
        ["Café des 2 Moulins", "Amélie Poulain", "15 rue Lepic", "75018 Paris", "France"],
    ),
    "JP": (
        {"first_name": "太郎", "last_name": "山田", "name": "山田 太郎", "address1": "千代田1-1", "city": "千代田区",
         "province": "東京都", "province_code": "JP-13", "zip": "100-0001", "country": "Japan", "country_code": "JP"},
        ["〒100-0001", "東京都", "千代田区", "千代田1-1", "太郎 山田", "Japan"],
    ),
    "JP, in Latin script": (
        {"first_name": "Taro", "last_name": "Yamada", "address1": "1-1 Chiyoda", "city": "Chiyoda-ku",
         "province": "Tokyo", "province_code": "JP-13", "zip": "100-0001", "country": "Japan", "country_code": "JP"},
        ["Taro Yamada", "Chiyoda-ku, 1-1 Chiyoda, Tokyo", "100-0001", "Japan"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("country", list(ADDRESSES))
def test_addresses_are_laid_out_as_the_country_writes_them(country: str) -> None:
    # GIVEN a Shopify order shipping to this country (customer locale English, so country names are in English)
    address, expected = ADDRESSES[country]
    mail = _mail(_order("en", address))
    # THEN the address lines follow the country's postal layout, the country's name last
    assert mail.variables["order"]["shipping_address"]["lines"] == expected
    # and the mail prints them in that order
    rendered = render(builtin("order_confirmation").source, mail.variables)
    assert "\n".join(expected) in rendered.text
