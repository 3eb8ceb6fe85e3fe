"""Non-ASCII header text survives the trip: what the builder writes decodes back to exactly what was asked for.

The email package's own folding moves spaces around when it splits non-ASCII text into several encoded words
(RFC 2047 §6.2: white space between encoded words is not text); these properties would catch that again.

Display names are decoded here as RFC 2047 §6.2 says (``email.header.decode_header``): the email package's newer
address parser keeps the white space between two encoded words of a display name, which mail clients do not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.accept.header_encoding import MAX_ENCODED_WORD, encoded_words
from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest

# Letters from many scripts, emoji, joiners and marks, punctuation that needs quoting in phrases, and plenty of spaces.
_ALPHABET = st.sampled_from(
    list("abc XYZ  ,;:<>()\"'@.=?_-")
    + list("äöüßéçñøΩπж中文日本語한국어עבריתالعربية")
    + ["🎉", "👩", "\u200d", "\u0301", "🇩"]
)
_TEXT = st.text(_ALPHABET, min_size=1, max_size=160).map(lambda text: " ".join(text.split())).filter(bool)
# ASCII with words too long for one line, tabs, and text that looks like an encoded word.
_ASCII = (
    st.lists(st.one_of(st.text("y", min_size=1, max_size=120), st.sampled_from(["a", "x=y", "a?b", "=?q?", "\t", ""])))
    .map(lambda words: " ".join(words)[:998].strip())
    .filter(bool)
)


def rfc2047_mailboxes(msg: Message, field: str) -> list[tuple[str, str]]:
    """(display name, address) of each mailbox in the field as sent, decoded per RFC 2047."""
    raw = "".join(str(value) for name, value in msg.raw_items() if name == field).replace("\r\n", "")  # unfold
    return [(str(make_header(decode_header(name))), address) for name, address in getaddresses([raw])]


def roundtrip(**fields: object) -> Message:
    body: dict[str, object] = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "x", "text": "x"}
    request = SendRequest.model_validate({**body, **fields})
    raw = render(build_message(request, message_id=message_id_header("msg_01", "shop.example"), date=datetime.now(UTC)))
    lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in lines) <= 78, "header lines stay within RFC 5322's 78 characters"
    assert all(byte < 128 for byte in raw)
    return message_from_bytes(raw, policy=policy.default)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=st.one_of(_TEXT, _ASCII))
def test_any_subject_and_custom_header_decode_to_themselves(subject: str) -> None:
    msg = roundtrip(subject=subject, headers={"X-Note": subject})
    assert msg["Subject"] == subject
    assert msg["X-Note"] == subject


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_TEXT.map(lambda n: n[:200]), min_size=1, max_size=3))
def test_any_display_names_decode_to_themselves(names: list[str]) -> None:
    recipients = [{"email": f"r{i}@example.org", "name": name} for i, name in enumerate(names)]
    msg = roundtrip(to=recipients, **{"from": {"email": "orders@shop.example", "name": names[0]}})
    assert rfc2047_mailboxes(msg, "To") == [(n.strip(), r["email"]) for n, r in zip(names, recipients, strict=True)]
    assert rfc2047_mailboxes(msg, "From") == [(names[0].strip(), "orders@shop.example")]


@given(text=_TEXT)
def test_encoded_words_are_at_most_75_characters_of_whole_characters(text: str) -> None:
    words = encoded_words(text, first_room=40)
    assert len(words[0]) <= 40
    assert all(len(word) <= MAX_ENCODED_WORD for word in words)
