"""Parse asynchronous bounces: Delivery Status Notifications (RFC 3464) inside a multipart/report (RFC 6522).

A DSN is three parts::

    multipart/report; report-type=delivery-status
      text/plain                    what a person reads
      message/delivery-status       per-message fields, a blank line, then one block of fields per recipient
      message/rfc822 | text/rfc822-headers     the original message, or only its header

Internationalised DSNs (RFC 6533) use ``message/global-delivery-status`` and ``message/global(-headers)`` and are
read the same way. :func:`parse_dsn` is a pure function: bytes in, a :class:`DeliveryStatusReport` out, or
:class:`DsnParseError` when the message is not a DSN (free-text bounces from pre-RFC 3464 servers are not guessed at).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser

from postroom.core.bounce_types import BounceType, classify_bounce

__all__ = ["DeliveryStatusReport", "DsnParseError", "DsnRecipient", "is_delivery_status_report", "parse_dsn"]

_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"})
# RFC 3464 §2.3.4: status-code = DIGIT "." 1*3DIGIT "." 1*3DIGIT (class 2, 4 or 5), possibly followed by a comment.
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_SMTP_CODE = re.compile(r"^\s*([245]\d\d)\b")
_FOLD = re.compile(r"\r?\n[ \t]+")


class DsnParseError(ValueError):
    """The message is not a delivery status notification Postroom can read."""


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block (RFC 3464 §2.3)."""

    final_recipient: str  # the address the reporting MTA tried, address-type ("rfc822;") removed
    action: str  # failed, delayed, delivered, relayed or expanded (RFC 3464 §2.3.3), lower-case
    status: str  # the RFC 3463 enhanced status code, e.g. "5.1.1"
    original_recipient: str | None = None  # the address as first given (ORCPT), when the MTA knew it
    diagnostic_code: str | None = None  # e.g. "550 5.1.1 <ann@example.org>: user unknown" (type "smtp;" removed)
    remote_mta: str | None = None
    last_attempt_date: str | None = None

    @property
    def address(self) -> str:
        """The address Postroom sent to: the original recipient if the report names it, else the final one."""
        return self.original_recipient or self.final_recipient

    @property
    def smtp_code(self) -> int | None:
        match = _SMTP_CODE.match(self.diagnostic_code or "")
        return int(match[1]) if match else None

    @property
    def bounce_type(self) -> BounceType | None:
        return classify_bounce(self.smtp_code, self.status, self.diagnostic_code or "")


@dataclass(frozen=True)
class DeliveryStatusReport:
    recipients: tuple[DsnRecipient, ...]
    original_message_id: str | None = None  # "<…>" from the returned message or its header
    original_envelope_id: str | None = None  # ENVID (RFC 3461), if the original transaction set one
    reporting_mta: str | None = None
    arrival_date: str | None = None


def is_delivery_status_report(message: Message) -> bool:
    """``multipart/report`` with ``report-type=delivery-status`` (RFC 6522 §3, RFC 3464 §2.1), global variant too."""
    if message.get_content_type() != "multipart/report":
        return False
    report_type = str(message.get_param("report-type", "") or "").strip().lower()
    return report_type in {"delivery-status", "global-delivery-status"}


def parse_dsn(raw: bytes | Message) -> DeliveryStatusReport:
    message = message_from_bytes(raw, policy=policy.compat32) if isinstance(raw, bytes) else raw
    if not is_delivery_status_report(message):
        raise DsnParseError(f"not a delivery status notification: {message.get_content_type()}")
    payload = message.get_payload()
    if not isinstance(payload, list):
        raise DsnParseError("multipart/report without parts")
    # A multipart payload is a list of Messages when parsed; the type also admits strings (set_payload by hand).
    parts = [part for part in payload if isinstance(part, Message)]
    status_part = next((part for part in parts if part.get_content_type() in _STATUS_TYPES), None)
    if status_part is None:
        raise DsnParseError("multipart/report without a message/delivery-status part")
    blocks = _field_blocks(status_part)
    if not blocks:
        raise DsnParseError("the delivery-status part is empty")
    per_message, per_recipient = blocks[0], blocks[1:]
    recipients = tuple(recipient for block in per_recipient if (recipient := _recipient(block)) is not None)
    if not recipients:
        raise DsnParseError("the delivery-status part names no recipient")
    original = next((part for part in parts if part.get_content_type() in _ORIGINAL_TYPES), None)
    return DeliveryStatusReport(
        recipients=recipients,
        original_message_id=_original_message_id(original),
        original_envelope_id=per_message.get("original-envelope-id"),
        reporting_mta=_typed_value(per_message.get("reporting-mta")),
        arrival_date=per_message.get("arrival-date"),
    )


# -- fields ------------------------------------------------------------------------------------------------------------


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The groups of fields, each a dict with lower-case names (the first occurrence of a field wins)."""
    payload = part.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        # The email package parses message/delivery-status into one Message per block; other message/* types (the
        # RFC 6533 global variant) into a single Message whose body holds the remaining blocks as text.
        for block in payload:
            if not isinstance(block, Message):
                continue
            blocks.append(_fields(block.items()))
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.extend(_text_blocks(rest))
    elif isinstance(payload, str):
        text = part.get_payload(decode=True)
        blocks.extend(_text_blocks(text.decode("utf-8", "replace") if isinstance(text, bytes) else payload))
    return [block for block in blocks if block]


def _text_blocks(text: str) -> list[dict[str, str]]:
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [_fields(HeaderParser(policy=policy.compat32).parsestr(chunk + "\n\n").items()) for chunk in chunks]


def _fields(items: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in items:
        fields.setdefault(name.strip().lower(), _FOLD.sub(" ", str(value)).strip())
    return fields


def _typed_value(value: str | None) -> str | None:
    """``"rfc822; ann@example.org"`` → ``"ann@example.org"`` (RFC 3464 §2.1.2: address-type ";" value)."""
    if value is None:
        return None
    _, semicolon, rest = value.partition(";")
    text = (rest if semicolon else value).strip()
    return text.removeprefix("<").removesuffix(">").strip() or None


def _recipient(block: dict[str, str]) -> DsnRecipient | None:
    final = _typed_value(block.get("final-recipient"))
    action = (block.get("action") or "").split("(")[0].strip().lower()
    status = _STATUS.search(block.get("status") or "")
    if not final or not action or status is None:
        return None  # RFC 3464 §2.3: all three are required; a block without them reports nothing usable
    return DsnRecipient(
        final_recipient=final,
        action=action,
        status=status[1],
        original_recipient=_typed_value(block.get("original-recipient")),
        diagnostic_code=_typed_value(block.get("diagnostic-code")),
        remote_mta=_typed_value(block.get("remote-mta")),
        last_attempt_date=block.get("last-attempt-date"),
    )


def _original_message_id(part: Message | None) -> str | None:
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        # message/rfc822, message/global: the returned message itself
        value = payload[0].get("Message-ID")
    else:  # text/rfc822-headers, message/global-headers: only the header, as text
        text = part.get_payload(decode=True)
        header = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(payload)
        value = HeaderParser(policy=policy.compat32).parsestr(header).get("Message-ID")
    if not value:
        return None
    match = re.search(r"<[^<>\s]+>", _FOLD.sub(" ", str(value)))
    return match[0] if match else None
