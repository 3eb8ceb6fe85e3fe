"""Template rendering: the sandbox, strict variables, escaping, CSS inlining, the generated text part, built-ins."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from postroom.accept.compose import MessageInput, compose
from postroom.accept.mime_build import build_message
from postroom.accept.mime_build import render as render_mime
from postroom.commerce.orders import Mail, Reminder, shopify_actions, woocommerce_actions
from postroom.commerce.stores import Platform, Store
from postroom.mailtemplates.render import TemplateRenderError, TemplateSource, check, money, render
from postroom.mailtemplates.template_store import BUILTIN_NAMES, builtin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORE = Store(id="demo", platform=Platform.SHOPIFY, sender="Shop <orders@shop.example>", shop_name="Demo Shop")


def source(html: str = "<p>{{ name }}</p>", subject: str = "Hi {{ name }}", text: str | None = None) -> TemplateSource:
    return TemplateSource(subject=subject, html=html, text=text)


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ name.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ items.append(1) }}",
    ],
)
def test_sandbox_refuses_python_internals(attack: str) -> None:
    # GIVEN a template that reaches for Python internals (or mutates its input)
    # WHEN it is rendered  THEN it is a template error, not a leak
    with pytest.raises(TemplateRenderError):
        render(source(html=attack), {"name": "Ann", "items": [1, 2]})


def test_undefined_variable_is_an_error_that_names_it() -> None:
    with pytest.raises(TemplateRenderError) as caught:
        render(source(html="<p>Dear {{ customer.first_name }}</p>"), {"customer": {}, "name": "Ann"})
    assert "first_name" in caught.value.message
    assert caught.value.field == "variables"
    with pytest.raises(TemplateRenderError, match="'name' is undefined"):
        render(source(), {})


def test_syntax_error_is_refused_when_checked_with_its_line() -> None:
    with pytest.raises(TemplateRenderError, match="html: line 2") as caught:
        check(source(html="<p>ok</p>\n{% for x in %}"))
    assert caught.value.field == "html"


def test_html_is_escaped_text_and_subject_are_not_and_subject_is_one_line() -> None:
    # GIVEN a value with markup and a line break (header injection attempt)
    rendered = render(
        source(html="<p>{{ name }}</p>", subject="Order for {{ name }}", text="Hello {{ name }}"),
        {"name": "<b>Ann</b> & Co\r\nBcc: victim@example.org"},
    )
    # THEN the HTML escapes it, the text keeps it, and the subject is folded onto one line
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Co" in rendered.html
    assert rendered.text.startswith("Hello <b>Ann</b> & Co")
    assert rendered.subject == "Order for <b>Ann</b> & Co Bcc: victim@example.org"
    assert "\n" not in rendered.subject


def test_css_is_inlined_media_queries_kept_and_remote_sheets_ignored() -> None:
    html = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
        "<style>p.x { color: red } @media (max-width: 600px) { p { color: blue } }</style></head>"
        '<body><p class="x">{{ name }}</p></body></html>'
    )
    rendered = render(source(html=html), {"name": "Ann"})
    assert '<p class="x" style="color: red;">Ann</p>' in rendered.html
    assert "@media (max-width: 600px)" in rendered.html
    assert "x.css" not in rendered.html


def test_text_is_generated_from_the_html_when_not_given() -> None:
    rendered = render(source(html="<h1>Hi {{ name }}</h1><table><tr><td>Total</td><td>€5</td></tr></table>"),
                      {"name": "Ann"})  # fmt: skip
    assert rendered.text == "Hi Ann\n\nTotal €5\n"


def test_money_filter() -> None:
    assert money("403", "USD") == "$403.00"
    assert money("1234.5", "EUR") == "€1,234.50"
    assert money("-5", "GBP") == "-£5.00"
    assert money("12", "CHF") == "CHF12.00"  # CLDR's English pattern: the code before the amount
    assert money("1200", "JPY") == "¥1,200"


def variables_for(platform: str, fixture: str, topic: str) -> dict:
    payload = json.loads((FIXTURES / platform / fixture).read_text())
    mapper = shopify_actions if platform == "shopify" else woocommerce_actions
    actions = mapper(topic, payload, STORE)
    return next(a.variables for a in actions if isinstance(a, Mail | Reminder))


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_builtin_renders_into_a_valid_message(name: str) -> None:
    # GIVEN a built-in template and the variables the commerce hooks derive from a documented payload
    if name == "abandoned_checkout":
        variables = variables_for("shopify", "checkouts_create.json", "checkouts/create")
    else:
        variables = variables_for("shopify", "orders_fulfilled.json", "orders/fulfilled")
        variables["order"]["refund"] = {"amount": "199.00", "reason": "damaged", "line_items": []}
    # WHEN it is sent with them
    request = MessageInput.model_validate(
        {"from": STORE.sender, "to": "john@example.com", "template": name, "variables": variables}
    )
    rendered = compose(request, "default", templates=_BuiltinsOnly())
    mime = message_from_bytes(render_mime(build_message(rendered, message_id="<x@shop.example>", date=_now())),
                              policy=policy.default)  # fmt: skip
    # THEN it personalises: the customer's name and, where the template has them, items, totals and addresses
    html = mime.get_body(("html",)).get_content()
    text = mime.get_body(("plain",)).get_content()
    assert mime.defects == []
    assert "John" in html
    if name != "refund":
        assert "IPod Nano - 8GB" in html
        assert "IPod Nano - 8GB" in text
    assert "style=" in html
    assert "<style>p {" not in html
    if name in ("order_confirmation", "shipping_confirmation"):
        assert "123 Shipping Street" in html
    if name in ("order_confirmation", "order_cancelled", "abandoned_checkout"):
        assert "$403.00" in html or "$199.00" in html
    if name == "shipping_confirmation":
        assert "1Z2345" in html
    if name == "refund":
        assert "$199.00" in rendered.subject
        assert "damaged" in text


def test_item_names_are_escaped_in_the_builtin_html() -> None:
    variables = variables_for("shopify", "orders_create.json", "orders/create")
    rendered = render(builtin("order_confirmation").source, variables)
    assert 'IPod Nano - 8GB &lt;Blue &amp; "Special"&gt;' in rendered.html
    assert '<Blue & "Special">' in rendered.text


class _BuiltinsOnly:
    def get(self, tenant: str, name: str):
        return builtin(name)


def _now():
    from postroom.core.clock import utcnow

    return utcnow()
