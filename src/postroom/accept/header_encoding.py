"""RFC 2047 encoded words for non-ASCII header text, folded so that it decodes back to exactly what was written.

The email package's own folding loses or inserts spaces when it splits non-ASCII text into several encoded words
(``"🎉 Family"`` can come back as ``"🎉Family"``, ``"Jörg"`` as ``"J örg"``): RFC 2047 §6.2 says the white space
between two adjacent encoded words is not part of the text, so a space must travel *inside* an encoded word and a fold
may only fall between two of them. It also folds long ASCII text, which the email package gets wrong in the same way.
Postroom writes Subject, custom headers and address fields with it; the email package keeps the rest (Date,
Message-ID and the Content-* fields of the parts).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from email.utils import formataddr

__all__ = ["MAX_LINE", "encoded_words", "fold_address_field", "fold_unstructured_field"]

MAX_LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (998 is the hard limit)
MAX_ENCODED_WORD = 75  # RFC 2047 §2: an encoded-word is at most 75 characters long
FOLD = "\r\n "  # RFC 5322 §3.2.2: folding white space, a line break before white space
# RFC 2047 §5(3): in a phrase (display name) a "Q" encoded word may only contain these literally; the same, stricter
# set is used for unstructured text so one encoder serves both.
_Q_LITERAL = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def _q(data: bytes) -> str:
    # RFC 2047 §4.2: "_" stands for a space; anything not literal becomes "=XX".
    return "".join("_" if byte == 0x20 else chr(byte) if byte in _Q_LITERAL else f"={byte:02X}" for byte in data)


def encoded_words(text: str, first_room: int = MAX_ENCODED_WORD) -> list[str]:
    """``text`` as UTF-8 encoded words, each a whole number of characters (RFC 2047 §5), the first at most
    ``first_room`` long, the others at most 75. "Q" when that is shorter overall (mostly-Latin text stays readable),
    else "B"."""
    data = text.encode()
    use_q = len(_q(data)) <= len(base64.b64encode(data))
    prefix, suffix = ("=?utf-8?q?", "?=") if use_q else ("=?utf-8?b?", "?=")
    words: list[str] = []
    chunk = b""
    room = max(first_room, len(prefix) + len(suffix) + 12)  # always room for at least one character

    def size(payload: bytes) -> int:
        encoded = len(_q(payload)) if use_q else (len(payload) + 2) // 3 * 4
        return len(prefix) + encoded + len(suffix)

    for character in text:
        piece = character.encode()
        if chunk and size(chunk + piece) > room:
            words.append(prefix + (_q(chunk) if use_q else base64.b64encode(chunk).decode()) + suffix)
            chunk, room = b"", MAX_ENCODED_WORD
        chunk += piece
    if chunk or not words:
        words.append(prefix + (_q(chunk) if use_q else base64.b64encode(chunk).decode()) + suffix)
    return words


def fold_unstructured_field(name: str, value: str) -> str:
    """The field body (what follows ``name: ``) for unstructured text such as a Subject: ASCII folded at its own
    white space (RFC 5322 §2.2.3: unfolding removes only the CRLF, so the text comes back as it was); anything else -
    non-ASCII, a word too long for a line, or text that would read as an encoded word - as encoded words."""
    if value.isascii() and "=?" not in value:
        folded = _fold_at_white_space(len(name) + 2, value)
        if folded is not None:
            return folded
    first_room = min(MAX_ENCODED_WORD, MAX_LINE - len(name) - 2)
    return FOLD.join(encoded_words(value, first_room))


def _fold_at_white_space(used: int, value: str) -> str | None:
    """Lines of at most 78 characters, each break placed before existing white space; None if a word is too long."""
    lines: list[str] = []
    line = ""
    for token in re.findall(r"[ \t]*[^ \t]+|[ \t]+$", value):  # each word with the white space before it
        if used + len(line) + len(token) <= MAX_LINE:
            line += token
        elif line and token[0] in " \t" and len(token) <= MAX_LINE:
            lines.append(line)
            line, used = token, 0  # the continuation line starts with the token's own white space
        else:
            return None
    lines.append(line)
    return "\r\n".join(lines)


def fold_address_field(name: str, mailboxes: Sequence[tuple[str, str]]) -> str:
    """The field body for ``[(display name, address), …]``: non-ASCII names as encoded words, ASCII names quoted as
    RFC 5322 needs, mailboxes separated by commas; folded only at white space that may be removed."""
    tokens: list[str] = []
    for index, (display_name, address) in enumerate(mailboxes):
        comma = "," if index < len(mailboxes) - 1 else ""
        quoted = formataddr((display_name, address)) + comma
        if not display_name:
            tokens.append(f"{address}{comma}")
        elif display_name.isascii() and "=?" not in display_name and len(quoted) < MAX_LINE:
            tokens.append(quoted)  # quoted by RFC 5322 §3.2.4 where it needs to be; one token, never folded inside
        else:
            tokens.extend(encoded_words(display_name, min(MAX_ENCODED_WORD, MAX_LINE - len(name) - 2)))
            tokens.append(f"<{address}>{comma}")
    lines: list[str] = []
    line = ""
    used = len(name) + 2
    for token in tokens:
        if not line:
            line = token
        elif used + len(line) + 1 + len(token) <= MAX_LINE:
            line += " " + token
        else:
            lines.append(line)
            line, used = token, 1  # a continuation line starts with the folding space
    lines.append(line)
    return FOLD.join(lines)
