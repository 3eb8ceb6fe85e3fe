"""The MIME builder: structure by content, 7-bit clean, CRLF, ≤ 998-character lines, no Bcc, bytes round-trip."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy

from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 3


def build(**fields: object) -> bytes:
    body: dict[str, object] = {"from": "Shop <orders@shop.example>", "to": ["ann@example.org"], "subject": "Hi"}
    body.update(fields)
    request = SendRequest.model_validate(body)
    msg = build_message(
        request, message_id=message_id_header("msg_01abc", "shop.example"), date=datetime(2026, 1, 2, tzinfo=UTC)
    )
    return render(msg)


def parse(raw: bytes):
    return message_from_bytes(raw, policy=policy.default)


def text_of(part) -> str:
    # A parsed wire message keeps CRLF inside text parts; mail clients show them as plain line ends.
    return part.get_content().replace("\r\n", "\n")


def assert_wire_clean(raw: bytes) -> None:
    assert all(byte < 128 for byte in raw), "message must be 7-bit clean"
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines), "bare LF found"
    assert max(len(line) for line in lines) <= 998


def test_text_only_is_a_single_part() -> None:
    raw = build(text="Hello")
    msg = parse(raw)
    assert msg.get_content_type() == "text/plain"
    assert text_of(msg) == "Hello\n"
    assert msg["Message-ID"] == "<01abc@shop.example>"
    assert msg["MIME-Version"] == "1.0"
    assert_wire_clean(raw)


def test_html_only_gets_a_generated_text_alternative() -> None:
    msg = parse(build(html="<p>Hello <a href='https://shop.example/o/1'>order</a></p><script>x()</script>"))
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert "Hello order (https://shop.example/o/1)" in text.get_content()
    assert "x()" not in text.get_content()
    assert html.get_content_type() == "text/html"


def test_full_structure_with_inline_image_and_attachment_round_trips_bytes() -> None:
    raw = build(
        text="Plain",
        html="<p>Grüße <img src='cid:logo@shop'></p>",
        bcc=["hidden@example.org"],
        headers={"X-Order-Id": "1234"},
        attachments=[
            {"filename": "rechnung-ä.pdf", "content": base64.b64encode(PDF).decode()},
            {"filename": "logo.png", "content": base64.b64encode(PNG).decode(), "content_id": "logo@shop"},
        ],
    )
    assert_wire_clean(raw)
    assert b"hidden@example.org" not in raw
    msg = parse(raw)
    assert msg.defects == []
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["X-Order-Id"] == "1234"
    alternative, attachment = msg.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = alternative.get_payload()
    assert text_of(text) == "Plain\n"
    html, image = related.get_payload()
    assert "Grüße" in html.get_content()
    assert image["Content-ID"] == "<logo@shop>"
    assert image.get_content() == PNG
    assert attachment.get_filename() == "rechnung-ä.pdf"
    assert attachment.get_content() == PDF
    assert sum(1 for k in raw.split(b"\r\n") if k.startswith(b"MIME-Version")) == 1


def test_non_ascii_subject_and_names_are_encoded_words() -> None:
    raw = build(text="x", subject="Ihre Bestellung ✓", to=["Jörg Müller <jorg@example.org>"])
    assert_wire_clean(raw)
    msg = parse(raw)
    assert msg["Subject"] == "Ihre Bestellung ✓"
    assert msg["To"].addresses[0].display_name == "Jörg Müller"


def test_long_lines_are_quoted_printable() -> None:
    raw = build(text="word " * 400)
    assert_wire_clean(raw)
    assert text_of(parse(raw)) == "word " * 400 + "\n"
