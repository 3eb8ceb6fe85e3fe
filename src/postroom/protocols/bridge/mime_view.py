"""A stored message as Twisted's IMAP server reads it: headers, bodies and MIME parts (``IMessagePart``).

The top level is served from the received bytes exactly (BODY[], BODY[HEADER], BODY[TEXT]), so a client that
verifies a signature or computes a hash sees what arrived. Sub-parts come from the stdlib parser.
"""

# Twisted's interfaces and command tables are camelCase and UPPER_case; the names here must match them.
# ruff: noqa: N802

from __future__ import annotations

import email
import re
from email import policy
from email.message import Message
from io import BytesIO

from twisted.mail import imap4
from zope.interface import implementer

_CRLF_POLICY = policy.compat32.clone(linesep="\r\n")
_FIELD_START = re.compile(rb"^[^ \t]")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with its blank line) and the body of an RFC 5322 message."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)], raw[end + len(separator) :]
    return raw, b""


def header_fields(header: bytes, names: list[str] | None, *, negate: bool) -> bytes:
    """The fields of a header block named in ``names`` (or all but them), folding kept, then the blank line:
    BODY[HEADER.FIELDS (...)] and BODY[HEADER.FIELDS.NOT (...)] (RFC 3501 6.4.5)."""
    wanted = {n.lower() for n in names or []}
    fields: list[list[bytes]] = []
    for line in header.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        if _FIELD_START.match(line) or not fields:
            fields.append([line])
        else:
            fields[-1].append(line)  # a folded continuation line
    kept = []
    for field in fields:
        name = field[0].split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        if (name in wanted) != negate:
            kept.append(b"\r\n".join(field))
    return b"".join(line + b"\r\n" for line in kept) + b"\r\n"


@implementer(imap4.IMessagePart)
class MimePart:
    def __init__(self, message: Message, body: bytes | None = None) -> None:
        self.message = message
        self._body = body

    @classmethod
    def parse(cls, raw: bytes) -> MimePart:
        return cls(email.message_from_bytes(raw, policy=policy.compat32), split_header(raw)[1])

    def getHeaders(self, negate: bool, *names: str | bytes) -> dict[str, str]:
        wanted = {(n.decode() if isinstance(n, bytes) else n).lower() for n in names}
        found: dict[str, str] = {}
        for name, value in self.message.items():
            key = name.lower()
            if key in found or (key in wanted) == negate:
                continue
            found[key] = str(value)
        if "content-type" in found:
            found["content-type"] = self._content_type()
        return found

    def _content_type(self) -> str:
        # Twisted splits parameters on ';' and '=' naively; a trailing ';' or a bare token would break
        # BODYSTRUCTURE for the whole FETCH, so the value is rebuilt from what the stdlib parser made of it.
        params = "".join(
            f'; {name}="{value}"'
            for name, value in self.message.get_params(header="content-type", failobj=[])[1:]
            if name and isinstance(value, str) and value.isprintable() and '"' not in value
        )
        return self.message.get_content_type() + params

    def getBodyFile(self) -> BytesIO:
        return BytesIO(self._body_bytes())

    def _body_bytes(self) -> bytes:
        if self._body is None:
            self._body = split_header(self.message.as_bytes(policy=_CRLF_POLICY))[1]
        return self._body

    def getSize(self) -> int:
        return len(self._body_bytes())

    def isMultipart(self) -> bool:
        return self.message.is_multipart()

    def getSubPart(self, part: int) -> MimePart:
        payload = self.message.get_payload()
        if not isinstance(payload, list) or not 0 <= part < len(payload):
            raise IndexError(f"no part {part + 1}")
        sub = payload[part]
        if not isinstance(sub, Message):  # a multipart's payload is its parts, each a Message
            raise IndexError(f"part {part + 1} is not a MIME part")
        return MimePart(sub)
