"""A corpus of varied messages goes through the MIME builder, DKIM signing and a real SMTP server; what the server
received parses back, part by part and header by header, to the same content without a single defect."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import dkim
import pytest
from pydantic import ValidationError

from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest
from postroom.core.delivery_results import Outcome
from postroom.deliver.dkim import DkimAlgorithm, DkimKey, DkimSigner, SigningSmtpAgent, generate_key
from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from tests.deliverability.conftest import HELO_NAME

_random = random.Random(9)  # test data, not secrets
PDF = b"%PDF-1.7\n" + _random.randbytes(5 * 1024 * 1024)  # a large attachment: 5 MB, ~6.8 MB once base64-encoded
PNG = b"\x89PNG\r\n\x1a\n" + _random.randbytes(20_000)
GIF = b"GIF89a" + _random.randbytes(3_000)
CSV = "Artikel;Menge;Preis\nKäse;2;4,50 €\nBrötchen;10;0,35 €\n".encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CORPUS: dict[str, dict[str, Any]] = {
    "unicode names": {
        "from": "Jörg Müller-Lüdenscheidt <orders@shop.example>",
        "to": ["Ωμέγα Δοκιμή <omega@example.org>", "李小龍 <li@example.org>", '"Doe, John (Sales)" <john@example.org>'],
        "cc": ["🦄 Unicorn Team <unicorn@example.org>"],
        "reply_to": ["Kundenservice Straße <service@shop.example>"],
        "subject": "Grüße aus Köln — Ihre Bestellung №1001",
        "text": "Sehr geehrte Damen und Herren,\n\nvielen Dank für Ihre Bestellung über 12,50 €.\n",
    },
    "right to left": {
        "from": "متجر <orders@shop.example>",
        "to": ["דנה כהן <dana@example.org>"],
        "subject": "طلبك رقم ١٠٠١ جاهز للشحن",
        "text": "مرحبا دانة،\n\u200fتم شحن طلبك. \u202bשלום עולם\u202c 123 ABC.\nשלום, ותודה!\n",
        "html": '<html dir="rtl"><body><p>مرحبا <b>دانة</b>، تم شحن طلبك.</p><p dir="rtl">שלום!</p></body></html>',
    },
    "emoji subject": {
        "to": ["ann@example.org"],
        "subject": ("👩‍👩‍👧‍👦 Family plan 🎉 " * 25).strip(),
        "text": "🎉🎉🎉 Party time 🥳 — family 👨‍👩‍👧 and flags 🇩🇪🇯🇵\n",
    },
    "large attachments": {
        "to": ["ann@example.org"],
        "subject": "Invoice and report",
        "text": "Attached: the invoice (5 MB) and the March overview.\n",
        "attachments": [
            {"filename": "invoice-2026-03.pdf", "content": b64(PDF)},
            {
                "filename": "Übersicht März 2026 — Filiale Köln-Ehrenfeld (final, geprüft).csv",
                "content": b64(CSV),
                "content_type": "text/csv",
            },
            {"filename": "empty.txt", "content": ""},
        ],
    },
    "inline images": {
        "to": ["ann@example.org"],
        "subject": "Your order, with pictures",
        "text": "Your order: see the pictures.\n",
        "html": '<p>Logo <img src="cid:logo@shop.example"> and product <img src="cid:product-1"></p>',
        "attachments": [
            {"filename": "logo.png", "content": b64(PNG), "content_id": "logo@shop.example"},
            {"filename": "product.gif", "content": b64(GIF), "content_id": "product-1"},
            {"filename": "terms.pdf", "content": b64(PDF[:50_000])},
        ],
    },
    "html only": {
        "to": ["ann@example.org"],
        "subject": "Newsletter",
        "html": (
            "<html><head><style>p{color:red}</style><script>track()</script></head><body>"
            "<h1>Caf&eacute; &amp; Bäckerei</h1><p>Neu: <a href='https://shop.example/neu'>Sortiment</a></p>"
            "<table><tr><td>Brot</td><td>2,50&nbsp;€</td></tr></table><ul><li>eins</li><li>zwei</li></ul></body></html>"
        ),
    },
    "long lines": {
        "to": ["ann@example.org"],
        "subject": "x" * 990,
        "text": "a" * 5000 + "\n" + ("word " * 400) + "\n" + "=" * 1200 + "\n",
        "html": "<p>" + "b" * 3000 + "</p>",
        "headers": {"X-Long-Token": "t" * 990, "X-Note": "Grüße " * 150},
    },
    "dots, From and control characters": {
        "to": ["ann@example.org"],
        "subject": "Edge cases",
        "text": ".\n..two dots\nFrom the start of a line\ntrailing spaces   \n\ttab\nbare\rCR\r\nCRLF\nnul\x00byte esc\x1b\n",
    },
    "CJK": {
        "from": "ショップ <orders@shop.example>",
        "to": ["山田太郎 <taro@example.org>"],
        "subject": "ご注文ありがとうございます（注文番号：1001）",
        "text": "山田様\n\nこの度はご注文いただき誠にありがとうございます。\n" * 20,
        "html": "<p>" + "感谢您的订购。" * 50 + "</p>",
    },
}


def normalised(text: str) -> str:
    """What a text part must read as after the trip: lines joined with LF, ending in one (RFC 5322 lines are CRLF;
    a bare CR or LF in the input is a line end)."""
    return "\n".join(text.splitlines()) + "\n"


def text_of(part: EmailMessage) -> str:
    return normalised(part.get_content())


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return generate_key("shop.example", "corpus", DkimAlgorithm.RSA)[0]


@pytest.fixture(scope="module")
def delivered(key: DkimKey) -> Iterator[dict[str, tuple[SendRequest, bytes, RecordingSink, Any]]]:
    """Every corpus message, built, signed and delivered to a real SMTP server that offers SMTPUTF8."""
    zone = {"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
    zone[key.dns_name] = {"TXT": [key.dns_value]}
    with LoopbackDnsServer(zone) as dns_server, RecordingSink(smtputf8=True) as sink:
        resolver = MxResolver([dns_server.nameserver], timeout=1.0)
        signer = DkimSigner({"shop.example": (key.selector,)}, _Keys(key))
        options = SmtpOptions(helo_name=HELO_NAME, port=sink.port, timeout=10.0)
        results: dict[str, tuple[SendRequest, bytes, RecordingSink, Any]] = {}
        with SmtpDeliveryAgent(resolver, options) as smtp:
            agent = SigningSmtpAgent(smtp, signer)
            for n, (name, fields) in enumerate(CORPUS.items()):
                request = SendRequest.model_validate({"from": "Shop <orders@shop.example>", **fields})
                header = message_id_header(f"msg_01jabcdefghjkmnpqrstvwx{n:02d}", "shop.example")
                raw = render(build_message(request, message_id=header, date=datetime(2026, 3, 1, 12, tzinfo=UTC)))
                outcomes = agent.deliver("example.org", request.from_.email, request.envelope_recipients(), raw)
                assert {r.outcome for r in outcomes} == {Outcome.DELIVERED}, (name, outcomes)
                results[name] = (request, raw, sink, len(sink.messages) - 1)
        resolver_for_verify = MxResolver([dns_server.nameserver], timeout=1.0)

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
            records = resolver_for_verify.txt(name.decode())
            return records[0] if records else None

        results["__dns__"] = (None, b"", sink, dnsfunc)  # type: ignore[assignment]
        yield results


class _Keys:
    def __init__(self, key: DkimKey) -> None:
        self._key = key

    def get(self, domain: str, selector: str) -> DkimKey:
        return self._key


def assert_wire_clean(raw: bytes) -> None:
    assert all(byte < 128 for byte in raw), "must be 7-bit"
    lines = raw.split(b"\r\n")
    joined = b"".join(lines)
    assert b"\n" not in joined, "bare LF"
    assert b"\r" not in joined, "bare CR"
    assert max(len(line) for line in lines) <= 998, "a line is longer than 998 characters (RFC 5322 §2.1.1)"


def assert_no_defects(msg: EmailMessage) -> None:
    for part in msg.walk():
        assert part.defects == [], (part.get_content_type(), part.defects)
        for name, value in part.items():
            assert not getattr(value, "defects", ()), (name, value.defects)


@pytest.mark.parametrize("name", list(CORPUS))
def test_the_received_message_parses_back_to_what_was_sent(
    name: str, delivered: dict[str, tuple[SendRequest, bytes, RecordingSink, Any]]
) -> None:
    request, raw, sink, index = delivered[name]
    received = sink.messages[index]
    dnsfunc = delivered["__dns__"][3]

    # THEN the server saw plain ASCII addresses (no SMTPUTF8 needed, so none asked for, although it was offered)
    assert not any(option.startswith("SMTPUTF8") for option in received.mail_options)
    # AND the bytes are clean on the wire, signed, and the signature verifies after the trip
    assert_wire_clean(received.content)
    assert received.content.endswith(raw)
    assert dkim.verify(received.content, dnsfunc=dnsfunc)
    # AND not one part or header has a defect
    msg = message_from_bytes(received.content, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert_no_defects(msg)
    # AND the headers say what was asked
    assert msg["Subject"] == request.subject
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert msg["Message-ID"].endswith("@shop.example>")
    assert [(a.display_name, a.addr_spec) for a in msg["From"].addresses] == [(request.from_.name, request.from_.email)]
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [(m.name, m.email) for m in request.to]
    for header, value in request.headers.items():
        assert msg[header] == value
    # AND the bodies read the same (a text part is generated for HTML-only mail)
    text_part = msg.get_body(("plain",))
    assert text_part is not None
    if request.text is not None:
        assert text_of(text_part) == normalised(request.text)
    else:
        assert "Café & Bäckerei" in text_part.get_content()
        assert "Sortiment (https://shop.example/neu)" in text_part.get_content()
        assert "track()" not in text_part.get_content()
    if request.html is not None:
        html_part = msg.get_body(("html",))
        assert html_part is not None
        assert text_of(html_part) == normalised(request.html)
    # AND every attachment is byte for byte the same, inline ones with their Content-ID
    parts = {part.get_filename(): part for part in msg.walk() if part.get_filename()}
    assert sorted(parts) == sorted(a.filename for a in request.attachments)
    for attachment in request.attachments:
        part = parts[attachment.filename]
        assert part.get_payload(decode=True) == attachment.data()
        assert part.get_content_type() == attachment.mime_type()
        if attachment.content_id:
            assert part["Content-ID"] == f"<{attachment.content_id}>"
            assert part.get_content_disposition() == "inline"


def test_each_text_part_gets_the_smaller_transfer_encoding(
    delivered: dict[str, tuple[SendRequest, bytes, RecordingSink, Any]],
) -> None:
    def encodings(name: str) -> dict[str, str]:
        msg = message_from_bytes(delivered[name][1], policy=policy.default)
        return {
            p.get_content_type(): p["Content-Transfer-Encoding"]
            for p in msg.walk()
            if p.get_content_maintype() == "text"
        }

    assert encodings("unicode names") == {"text/plain": "quoted-printable"}  # mostly ASCII: readable
    assert encodings("CJK") == {"text/plain": "base64", "text/html": "base64"}  # 3 bytes a character: base64
    assert encodings("right to left")["text/html"] == "base64"
    assert encodings("dots, From and control characters") == {"text/plain": "quoted-printable"}  # NUL is not 7bit
    assert encodings("long lines")["text/plain"] == "quoted-printable"  # ASCII, but lines over 998


def test_non_ascii_local_parts_are_refused_at_accept() -> None:
    # Deliberate: SES cannot send them and few MX hosts take SMTPUTF8, so a 202 for one would be a promise Postroom
    # could not keep. (International domains are fine: they travel as A-labels.)
    with pytest.raises(ValidationError, match="to"):
        SendRequest.model_validate(
            {"from": "orders@shop.example", "to": ["jörg@example.org"], "subject": "x", "text": "x"}
        )
    ok = SendRequest.model_validate(
        {"from": "orders@shop.example", "to": ["ann@bücher.example"], "subject": "x", "text": "x"}
    )
    assert ok.to[0].email == "ann@xn--bcher-kva.example"
