"""Rendering a template (subject, HTML, optional text) with caller-supplied variables.

Templates are written by API callers, so they are untrusted code: they run in Jinja2's immutable sandbox, which
refuses access to underscore attributes and Python internals (``{{ ''.__class__ }}``) and to mutating methods, and
caps ``range()``. Undefined variables raise instead of rendering as blanks: a mail that says "Dear ," is worse than
an error the caller sees at once. The HTML part is autoescaped; the subject and text parts are not (they are not
HTML), and the subject is folded onto one line, so a variable can never inject a header.

CSS from ``<style>`` blocks is inlined into ``style`` attributes after rendering (many mail clients drop
``<style>``); ``@media`` rules stay in a ``<style>`` block for the clients that honour them. Remote stylesheets are
never fetched: rendering must not make network requests on a caller's behalf.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import css_inline
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from postroom.core.errors import ValidationFailedError
from postroom.core.html_text import html_to_text

if TYPE_CHECKING:
    from jinja2 import Template

MAX_SOURCE_CHARS = 256 * 1024  # per part; a template is markup, not a place for attachments
MAX_RENDERED_CHARS = 2 * 1024 * 1024  # loops over large variables could otherwise build huge bodies


class TemplateRenderError(ValidationFailedError):
    """The template does not compile, or does not render with these variables."""

    code = "template_error"


@dataclass(frozen=True, slots=True)
class TemplateSource:
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "html": self.html, "text": self.text}


# Templates that pass no locale (a tenant's own, written before the locale argument existed) keep English formats.
DEFAULT_LOCALE = "en"


@lru_cache(maxsize=64)
def parse_locale(tag: str | None) -> Locale:
    """``"fr-FR"``, ``"fr_FR"``, ``"ja"`` → a Babel locale; anything CLDR does not know → :data:`DEFAULT_LOCALE`.

    Locale tags come from webhooks (Shopify's ``customer_locale``) and store settings, so an unknown or malformed
    one must not fail the mail: it falls back to English, as the formats did before locales were honoured.
    """
    if tag:
        try:
            return Locale.parse(str(tag).strip().replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    return Locale.parse(DEFAULT_LOCALE)


def money(amount: Any, currency: str = "", locale: str | None = None) -> str:
    """``{{ order.total | money(order.currency, order.locale) }}`` → ``€1,234.50`` (en), ``1 234,50 €`` (fr-FR).

    Babel applies CLDR's rules for the locale: symbol and its placement, grouping and decimal separators, and the
    currency's own number of digits (JPY has none). Without a currency code the plain localized number is printed.
    """
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return str(amount)
    if not value.is_finite():
        return str(amount)
    where = parse_locale(locale)
    code = str(currency or "").strip().upper()
    if not code:
        return format_decimal(value, format="#,##0.00", locale=where)
    return format_currency(value, code, locale=where)


def date(value: Any, locale: str | None = None, length: str = "long") -> str:
    """``{{ order.created_at | date(order.locale) }}`` → ``January 5, 2022`` (en), ``5 janvier 2022`` (fr).

    The ISO timestamp's own date is printed (the shop's offset as the platform sent it), not a UTC conversion that
    could move an evening order to the next day.
    """
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return format_date(moment.date(), format=length, locale=parse_locale(locale))


def _environment(*, autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["money"] = money
    env.filters["date"] = date
    return env


_HTML_ENV = _environment(autoescape=True)
_PLAIN_ENV = _environment(autoescape=False)
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=False)


@lru_cache(maxsize=256)
def _compile(source: str, html: bool, part: str) -> Template:
    env = _HTML_ENV if html else _PLAIN_ENV
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{part}: line {exc.lineno}: {exc.message}", field=part) from None


def check(source: TemplateSource) -> None:
    """Compile every part, so a broken template is refused when it is saved rather than when a mail needs it."""
    for part, text, html in (("subject", source.subject, False), ("html", source.html, True)):
        _check_size(part, text)
        _compile(text, html, part)
    if source.text is not None:
        _check_size("text", source.text)
        _compile(source.text, False, "text")


def _check_size(part: str, text: str) -> None:
    if len(text) > MAX_SOURCE_CHARS:
        raise TemplateRenderError(f"{part}: longer than {MAX_SOURCE_CHARS} characters", field=part)


def _where(part: str, exc: BaseException) -> str:
    """``"html: line 4"``: Jinja2 rewrites a render error's traceback so the template's own frame carries the
    template line; the editor uses it to mark the line. Just the part when no template frame is found."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return f"{part}: line {line}" if line else part


def _render_part(source: str, *, html: bool, part: str, variables: dict[str, Any]) -> str:
    template = _compile(source, html, part)
    try:
        output = template.render(variables)
    except UndefinedError as exc:
        where = _where(part, exc)
        raise TemplateRenderError(f"{where}: {exc.message} (pass it in variables)", field="variables") from None
    except SecurityError as exc:
        raise TemplateRenderError(f"{_where(part, exc)}: not allowed in a template: {exc}", field=part) from None
    except TemplateError as exc:
        raise TemplateRenderError(f"{_where(part, exc)}: {exc.message or type(exc).__name__}", field=part) from None
    except (TypeError, ValueError, ArithmeticError) as exc:  # e.g. a filter applied to a value of the wrong type
        raise TemplateRenderError(f"{_where(part, exc)}: {exc}", field=part) from None
    if len(output) > MAX_RENDERED_CHARS:
        raise TemplateRenderError(f"{part}: renders to more than {MAX_RENDERED_CHARS} characters", field=part)
    return output


def render(source: TemplateSource, variables: dict[str, Any]) -> Rendered:
    # RFC 5322 headers are one logical line: fold whatever the template and its variables produced onto one.
    subject = " ".join(_render_part(source.subject, html=False, part="subject", variables=variables).split())
    if not subject:
        raise TemplateRenderError("subject: renders to an empty subject", field="subject")
    html = _INLINER.inline(_render_part(source.html, html=True, part="html", variables=variables))
    if source.text is not None:
        text = _render_part(source.text, html=False, part="text", variables=variables)
    else:
        text = html_to_text(html)
    return Rendered(subject=subject, html=html, text=text)
