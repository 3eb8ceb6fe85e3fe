"""Property tests for the send request model and the MIME builder, on hostile input: header injection, lone surrogates
(what a JSON ``\\ud800`` escape becomes), control characters, huge headers, odd base64, odd file names.

Either the request is refused with a ``ValidationError`` (the API's 422), or the message builds, and then it is 7-bit
clean, CRLF-only, has no line over 998 characters, carries exactly the headers Postroom writes plus the caller's own,
never a Bcc, and the subject and custom headers read back as sent.
"""

from __future__ import annotations

import base64
import json
import re
import string
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest

EXAMPLES = 300
FIXED_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
OPTIONAL_HEADERS = {"cc", "reply-to", "content-transfer-encoding"}  # no CTE on a multipart
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# Everything a JSON string can carry, lone surrogates included, with the dangerous characters made likely.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
INJECTIONS = [
    "=?utf-8?q?a=0D=0ABcc:_evil@x.example?=",  # CR LF inside an RFC 2047 encoded word (CVE-2024-6923 on old CPython)
    "=?utf-8?b?DQpYLUluamVjdGVkOiB5ZXM=?=",  # the same, base64: "\r\nX-Injected: yes"
    "=?iso-8859-1?q?=85X-Injected:_yes?=",  # NEL, a line break for str.splitlines()
]
nasty = st.sampled_from(
    ["\r\n", "\n", "\r", "\x00", "\x0b", "\x1c", "\u2028", "\u2029", "\x85", "\ud800", "\udfff", "=?utf-8?q?x?=",
     ":", ";", *INJECTIONS]
)  # fmt: skip
hostile_text = st.lists(st.one_of(any_text, nasty), max_size=6).map("".join)
long_text = st.builds(lambda c, n: c * n, st.sampled_from(["a", "ü", "€", " ", "😀", "a b"]), st.integers(0, 3000))
header_name = st.one_of(
    st.text(st.sampled_from(string.ascii_letters + string.digits + "-_:. \r\n"), min_size=1, max_size=80),
    st.sampled_from(["X-Order", "Bcc", "bcc", "Content-Type", "X-Ok", "Received", "X\r\nBcc", "Subject"]),
)
b64 = st.one_of(
    st.binary(max_size=3000).map(lambda b: base64.b64encode(b).decode()),
    st.text(st.sampled_from(string.ascii_letters + "+/=\n -_"), max_size=200),
    st.just("A" * 4 * 5000),  # long, valid
    st.just("===="),
)
attachment = st.fixed_dictionaries(
    {"filename": st.one_of(hostile_text, st.just("../etc/passwd"), st.just("ok.pdf")), "content": b64},
    optional={
        "content_type": st.one_of(st.none(), hostile_text, st.just("application/pdf"), st.just("text/html")),
        "content_id": st.one_of(st.none(), hostile_text, st.just("<logo>")),
    },
)
mailbox = st.one_of(
    st.emails(),
    st.builds(lambda name, email: {"email": email, "name": name}, hostile_text, st.emails()),
    hostile_text,
)
request = st.fixed_dictionaries(
    {"from": st.just("Shop <orders@shop.example>"), "to": st.lists(mailbox, min_size=1, max_size=3)},
    optional={
        "subject": st.one_of(hostile_text, long_text),
        "text": st.one_of(st.none(), hostile_text, long_text),
        "html": st.one_of(st.none(), hostile_text, long_text.map(lambda t: f"<p>{t}</p>")),
        "cc": st.lists(mailbox, max_size=2),
        "bcc": st.lists(mailbox, max_size=2),
        "reply_to": st.lists(mailbox, max_size=1),
        "headers": st.dictionaries(header_name, st.one_of(hostile_text, long_text), max_size=4),
        "attachments": st.lists(attachment, max_size=3),
    },
)


def _build(body: dict[str, Any]) -> tuple[SendRequest, bytes] | None:
    try:
        # As the API gets it: JSON text (a lone surrogate is a "\\ud800" escape there, and refused as not Unicode).
        parsed = SendRequest.model_validate_json(json.dumps(body))
    except ValidationError:
        return None
    msg = build_message(
        parsed, message_id=message_id_header("msg_01fuzz", "shop.example"), date=datetime(2026, 1, 2, tzinfo=UTC)
    )
    return parsed, render(msg)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(request)
def test_hostile_requests_are_refused_or_build_clean_mime(body: dict[str, Any]) -> None:
    # GIVEN any request a client could send as JSON  WHEN it is validated and built
    built = _build(body)
    if built is None:
        return  # THEN either it is refused as invalid (the API's 422) ...
    parsed, raw = built
    # ... or the wire form is 7-bit, CRLF-only, with lines of at most 998 characters
    assert all(byte < 128 for byte in raw)
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert b"\r" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 998
    # ... and it parses back without structural defects, with exactly the headers Postroom and the caller wrote
    msg = message_from_bytes(raw, policy=policy.default)
    names = [name.lower() for name in msg]
    custom = {name.lower() for name in parsed.headers}
    assert len(names) == len(set(names)), f"a header appears twice: {names}"
    assert set(names) - OPTIONAL_HEADERS == FIXED_HEADERS | custom
    assert "bcc" not in names
    # ... and no header the caller wrote reads back with a line break or a control character in it
    for name in ["subject", "to", "cc", "reply-to", *custom]:
        if msg[name] is not None:
            assert not CONTROL.search(str(msg[name]).replace("\t", " ")), (name, str(msg[name]))
    if "=?" not in parsed.subject:  # the email package decodes encoded-word lookalikes it is given (see README)
        assert msg["Subject"] == parsed.subject


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.integers(1, 50), st.integers(1, 998))
def test_many_huge_custom_headers_still_fold_under_998(count: int, length: int) -> None:
    # GIVEN up to 50 custom headers of up to 998 characters, with and without spaces to fold at
    headers = {f"X-H{i}": ("w " * length)[:length] if i % 2 else "w" * length for i in range(count)}
    # WHEN the message is built
    built = _build({"from": "orders@shop.example", "to": "a@example.org", "subject": "s", "text": "t",
                    "headers": headers})  # fmt: skip
    # THEN it is either refused or every line stays within RFC 5322's 998 characters
    if built is not None:
        assert max(len(line) for line in built[1].split(b"\r\n")) <= 998


@pytest.mark.parametrize("value", [*INJECTIONS, "a\x85b", "a\u2028b", "a\u2029b", "a\x0bb", "a\x1cb"])
@pytest.mark.parametrize("where", ["subject", "header", "display name"])
def test_header_injection_through_encoded_words_and_unicode_line_breaks_is_refused(where: str, value: str) -> None:
    # GIVEN a value with no raw CR/LF that still breaks a header line: inside an encoded word, or as a Unicode break
    body: dict[str, Any] = {"from": "orders@shop.example", "to": "a@example.org", "subject": "s", "text": "t"}
    if where == "subject":
        body["subject"] = value
    elif where == "header":
        body["headers"] = {"X-Order": value}
    else:
        body["to"] = {"email": "a@example.org", "name": value}
    # WHEN it is validated  THEN it is refused (the API's 422), never written into a message
    with pytest.raises(ValidationError):
        SendRequest.model_validate_json(json.dumps(body))
