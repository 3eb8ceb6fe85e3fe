"""The send request's validation rules: each bad input is refused with a message naming the problem."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from postroom.accept.models import MAX_RECIPIENTS, SendRequest


def valid(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "from": "Shop <orders@shop.example>",
        "to": ["ann@example.org"],
        "subject": "Hi",
        "text": "x",
    }
    body.update(overrides)
    return body


def errors_of(body: dict[str, object]) -> list[tuple[tuple[object, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        SendRequest.model_validate(body)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_accepts_strings_and_objects_for_addresses() -> None:
    req = SendRequest.model_validate(
        valid(to="Ann <ann@example.org>", cc=[{"email": "bob@example.org", "name": "Bob"}], bcc="c@example.org")
    )
    assert [m.email for m in req.to] == ["ann@example.org"]
    assert req.cc[0].name == "Bob"
    assert req.envelope_recipients() == ["ann@example.org", "bob@example.org", "c@example.org"]


def test_idn_domain_is_normalised_to_a_label() -> None:
    req = SendRequest.model_validate(valid(to="Jörg <jorg@bücher.example>"))
    assert req.to[0].email == "jorg@xn--bcher-kva.example"
    assert req.to[0].name == "Jörg"


def test_duplicate_recipients_get_one_envelope_entry() -> None:
    req = SendRequest.model_validate(valid(to=["a@example.org"], cc=["A@example.org"]))
    assert req.envelope_recipients() == ["a@example.org"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject", "control characters"),
        ({"to": ["Ann\r\nBcc: x@example.org <ann@example.org>"]}, "to", "control characters"),
        ({"from": {"email": "orders@shop.example", "name": "Shop\nBcc: x@y.example"}}, "from", "control characters"),
        ({"headers": {"X-Order": "1\r\nBcc: x@example.org"}}, "headers", "control characters"),
        ({"headers": {"Bcc": "x@example.org"}}, "headers", "cannot be overridden"),
        ({"headers": {"message-id": "<x@y>"}}, "headers", "cannot be overridden"),
        ({"headers": {"Bad Name": "v"}}, "headers", "not a valid RFC 5322 field name"),
        ({"to": ["not-an-address"]}, "to", "not an email address"),
        ({"to": ["a@b"]}, "to", "period"),
        ({"to": ["a@example.org, b@example.org"]}, "to", "exactly one address"),
        ({"text": None}, None, "text or an html body"),
        ({"to": []}, None, "at least one recipient"),
        ({"attachments": [{"filename": "a.pdf", "content": "not base64!"}]}, "attachments", "not valid base64"),
        ({"attachments": [{"filename": "../etc/passwd", "content": "aGk="}]}, "attachments", "path separators"),
        ({"attachments": [{"filename": "a", "content": "aGk=", "content_type": "pdf"}]}, "attachments", "type/subtype"),
        ({"delivery": "carrier-pigeon"}, "delivery", "'auto', 'ses', 'smtp' or 'relay'"),
        ({"unknown": 1}, "unknown", "Extra inputs"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(overrides: dict[str, object], field: str | None, words: str) -> None:
    problems = errors_of(valid(**overrides))
    assert any(words in msg for _, msg in problems), problems
    if field:
        assert any(loc and loc[0] == field for loc, _ in problems), problems


def test_fifty_recipients_pass_fifty_one_fail() -> None:
    many = [f"r{i}@example.org" for i in range(MAX_RECIPIENTS)]
    assert len(SendRequest.model_validate(valid(to=many[:30], bcc=many[30:])).envelope_recipients()) == 50
    problems = errors_of(valid(to=[*many, "one-more@example.org"]))
    assert any("51 recipients" in msg for _, msg in problems)


def test_attachment_size_is_computed_without_decoding() -> None:
    for data in (b"", b"a", b"ab", b"abc", b"abcd" * 1000):
        content = base64.b64encode(data).decode()
        req = SendRequest.model_validate(valid(attachments=[{"filename": "f.bin", "content": content}]))
        assert req.attachments[0].decoded_size() == len(data)
        assert req.attachments[0].data() == data


def test_content_type_guessed_from_filename() -> None:
    req = SendRequest.model_validate(valid(attachments=[{"filename": "invoice.pdf", "content": "aGk="}]))
    assert req.attachments[0].mime_type() == "application/pdf"
