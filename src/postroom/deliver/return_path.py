"""The return path: the envelope sender (MAIL FROM) of direct SMTP and relay deliveries, and reading it back.

With a return-path domain configured, a message is sent with ``MAIL FROM:<bounces+msg_<ulid>.<tag>@<domain>>`` - a
VERP address (variable envelope return path) naming the Postroom message - while its From header stays the sender's.
A remote MTA that accepts the message and fails it later sends its DSN to that address (RFC 5321 §4.5.5, RFC 3464),
which Postroom receives like any inbound domain; the address says which message the DSN is about even when the DSN
quotes nothing of the original. Out-of-office replies follow the same path (RFC 3834 §4 sends them to the envelope
sender), which is why mail there is classified before anything is bounced
(:mod:`postroom.receive.bounces.return_path_mail`).

``tag`` is the first 40 bits of HMAC-SHA256 over a versioned label and the message id, keyed with the stack's link
signing secret, in lower-case base32: a bounce to an address someone guessed (or built from a Message-ID they saw) is
refused before it is read. Lower case only, because some MTAs fold the case of local parts. Without a key the address
carries no tag, and the DSN's quoted Message-ID (checked by :mod:`postroom.receive.bounces.bounce_report`) is what
ties a bounce to its message.

A pure module: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ["BOUNCE_LOCAL_PART", "ReturnPath", "VerpAddress"]

BOUNCE_LOCAL_PART = "bounces"  # bounces@<domain> itself is the system mailbox for what cannot be applied
_TAG_LABEL = b"postroom-return-path-v1."
_TAG_BYTES = 5  # 40 bits: eight base32 characters, no padding; a guess costs one SMTP transaction each
# RFC 5321 §4.5.3.1.1: a local part is at most 64 octets. "bounces+msg_" + 26 + "." + 8 = 47.
_VERP_LOCAL = re.compile(r"^bounces\+(msg_[0-9a-hjkmnp-tv-z]{26})(?:\.([a-z2-7]{8}))?$")


@dataclass(frozen=True)
class VerpAddress:
    """A recipient at the return-path domain: a message's bounce address, or (message_id None) the bare one."""

    address: str
    message_id: str | None
    tag: str | None = None


class ReturnPath:
    def __init__(self, domain: str, key: str | None = None) -> None:
        if not domain:
            raise ValueError("a return path needs a domain")
        self.domain = domain.strip().lower().rstrip(".")
        self._key = key.encode() if key else None

    @property
    def signed(self) -> bool:
        return self._key is not None

    @property
    def system_address(self) -> str:
        return f"{BOUNCE_LOCAL_PART}@{self.domain}"

    def address_for(self, message_id: str) -> str:
        """The envelope sender for ``message_id`` (``msg_…``)."""
        tag = self._tag(message_id)
        return f"{BOUNCE_LOCAL_PART}+{message_id}{'.' + tag if tag else ''}@{self.domain}"

    def parse(self, address: str) -> VerpAddress | None:
        """What an address at the return-path domain names, or None when the address is not a bounce address here
        (another domain, or another local part, which the inbound domain's usual routing handles)."""
        local, at, domain = address.strip().lower().rpartition("@")
        if not at or domain.rstrip(".") != self.domain:
            return None
        if local == BOUNCE_LOCAL_PART:
            return VerpAddress(f"{local}@{self.domain}", None)
        if not local.startswith(f"{BOUNCE_LOCAL_PART}+"):
            return None
        match = _VERP_LOCAL.match(local)
        if match is None:
            # bounces+<anything else>: still ours (no mailbox may take it), but it names no message.
            return VerpAddress(f"{local}@{self.domain}", "", None)
        return VerpAddress(f"{local}@{self.domain}", match[1], match[2])

    def refusal(self, verp: VerpAddress) -> str | None:
        """Why a bounce address cannot be genuine (None when it can): it names no message, or its tag is missing or
        wrong while a key is configured."""
        if verp.message_id is None:
            return None  # the bare system address is always accepted
        if not verp.message_id:
            return "names no Postroom message"
        expected = self._tag(verp.message_id)
        if expected is None:
            return None
        if verp.tag is None or not hmac.compare_digest(verp.tag, expected):
            return "its signature does not match"
        return None

    def _tag(self, message_id: str) -> str | None:
        if self._key is None:
            return None
        digest = hmac.new(self._key, _TAG_LABEL + message_id.encode(), hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.b32encode(digest).decode().lower()
