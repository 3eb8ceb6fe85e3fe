"""Webhook bodies and signatures in the subscriber's dialect, so handlers written for another provider keep working.

* ``standard``: Postroom's own ``{"type", "timestamp", "data"}``, signed per Standard Webhooks (``webhook-*`` headers).
* ``postmark``: Postmark's webhook JSON (``RecordType`` Delivery, Bounce, SpamComplaint, Open, Click,
  SubscriptionChange), one event per request. Postmark signs nothing (its users put basic auth in the URL); Postroom
  adds the Standard Webhooks headers, which a Postmark handler ignores and a careful one can check.
* ``sendgrid``: SendGrid's Event Webhook: a JSON *array* of events (``processed``, ``delivered``, ``bounce``, …) per
  request, several events of one batch together, signed like SendGrid's Signed Event Webhook: ECDSA P-256 over
  ``timestamp + body`` with SHA-256, the DER signature base64 in ``X-Twilio-Email-Event-Webhook-Signature``. The
  subscription holds the private key; its public key, base64 DER as SendGrid shows its "verification key", is what the
  receiver's ``EventWebhook`` helper is given.
* ``resend``: Resend's ``{"type": "email.delivered", "created_at", "data": {...}}``, signed by Svix's scheme (the same
  HMAC as Standard Webhooks) under ``svix-id``, ``svix-timestamp`` and ``svix-signature``.

An event type a provider has no counterpart for (e.g. ``sent`` for Postmark) is not delivered to that dialect's
subscriptions: a handler written for that provider would not know what to do with an invented record type.
"""

from __future__ import annotations

import base64
import hashlib
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from postroom.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from postroom.events.event_model import Event

__all__ = [
    "BATCHING",
    "Dialect",
    "body_and_headers",
    "new_signing_key",
    "supports",
    "verification_key",
]

SENDGRID_KEY_PREFIX = "sgkey_"

# SendGrid delivers "batches of events": the sender groups a batch's events for one such subscription into one POST.
BATCHING = frozenset({"sendgrid"})


class Dialect(StrEnum):
    STANDARD = "standard"
    POSTMARK = "postmark"
    SENDGRID = "sendgrid"
    RESEND = "resend"


_POSTMARK = {
    "delivered": "Delivery",
    "bounced": "Bounce",
    "complained": "SpamComplaint",
    "opened": "Open",
    "clicked": "Click",
    "unsubscribed": "SubscriptionChange",
}
_SENDGRID = {
    "sent": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounced": "bounce",
    "complained": "spamreport",
    "rejected": "dropped",
    "rendering_failed": "dropped",
    "failed": "dropped",
    "suppressed": "dropped",
    "opened": "open",
    "clicked": "click",
    "unsubscribed": "unsubscribe",
}
_RESEND = {
    "sent": "email.sent",
    "delivered": "email.delivered",
    "deferred": "email.delivery_delayed",
    "bounced": "email.bounced",
    "complained": "email.complained",
    "rejected": "email.failed",
    "rendering_failed": "email.failed",
    "failed": "email.failed",
    "opened": "email.opened",
    "clicked": "email.clicked",
}
_TYPES: dict[str, dict[str, str] | None] = {
    "standard": None,
    "postmark": _POSTMARK,
    "sendgrid": _SENDGRID,
    "resend": _RESEND,
}


def supports(dialect: str, event_type: str) -> bool:
    types = _TYPES.get(dialect)
    return types is None or event_type in types


def _epoch(iso: str) -> int:
    from postroom.core.clock import parse_iso

    return int(parse_iso(iso).timestamp())


def _postmark(event: Event) -> dict[str, Any]:
    details = event.details
    common: dict[str, Any] = {
        "RecordType": _POSTMARK[event.type.value],
        "MessageStream": "outbound",
        "MessageID": event.message_id,
        "Tag": event.tags[0] if event.tags else "",
        "Metadata": event.metadata,
        "ServerID": 0,
    }
    kind = event.type.value
    if kind == "delivered":
        return common | {
            "Recipient": event.recipient,
            "DeliveredAt": event.occurred_at,
            "Details": details.get("reply") or "",
        }
    if kind in {"bounced", "complained"}:
        hard = details.get("bounce_type") == "hard"
        kind_name = ("HardBounce", 1, "Hard bounce") if hard else ("SoftBounce", 4096, "Soft bounce")
        if kind == "complained":
            kind_name = ("SpamComplaint", 512, "Spam complaint")
        return common | {
            "ID": int(hashlib.sha256(event.id.encode()).hexdigest()[:12], 16),  # stable across retries
            "Type": kind_name[0],
            "TypeCode": kind_name[1],
            "Name": kind_name[2],
            "Description": details.get("reply") or details.get("diagnostic") or "",
            "Details": details.get("reply") or "",
            "Email": event.recipient,
            "From": details.get("from") or "",
            "BouncedAt": event.occurred_at,
            "DumpAvailable": False,
            "Inactive": kind == "complained" or hard,
            "CanActivate": True,
            "Subject": details.get("subject") or "",
            "Content": None,
        }
    if kind == "opened":
        return common | {
            "FirstOpen": bool(details.get("first", True)),
            "Recipient": event.recipient,
            "ReceivedAt": event.occurred_at,
            "Platform": "",
            "ReadSeconds": 0,
            "UserAgent": details.get("user_agent") or "",
            "OS": {},
            "Client": {},
            "Geo": {},
        }
    if kind == "clicked":
        return common | {
            "ClickLocation": "HTML",
            "OriginalLink": details.get("url") or "",
            "Recipient": event.recipient,
            "ReceivedAt": event.occurred_at,
            "Platform": "",
            "UserAgent": details.get("user_agent") or "",
            "OS": {},
            "Client": {},
            "Geo": {},
        }
    return common | {  # SubscriptionChange: the one-click unsubscribe
        "Recipient": event.recipient,
        "ChangedAt": event.occurred_at,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
    }


def _sendgrid(event: Event) -> dict[str, Any]:
    details = event.details
    item: dict[str, Any] = dict(event.metadata)  # SendGrid puts custom_args at the top level of each event
    item |= {
        "email": event.recipient,
        "timestamp": _epoch(event.occurred_at),
        "event": _SENDGRID[event.type.value],
        "sg_event_id": event.id,
        "sg_message_id": event.message_id,
        "smtp-id": f"<{event.message_id}>",
        "category": event.tags,
    }
    kind = event.type.value
    if kind == "bounced":
        item |= {
            "type": "bounce" if details.get("bounce_type") == "hard" else "blocked",
            "reason": details.get("reply") or "",
            "status": details.get("enhanced_status") or "",
        }
    elif kind in {"delivered", "deferred"}:
        item["response"] = details.get("reply") or ""
    elif kind in {"rejected", "rendering_failed", "failed", "suppressed"}:
        item["reason"] = details.get("reply") or details.get("reason") or kind
    elif kind == "clicked":
        item |= {"url": details.get("url") or "", "useragent": details.get("user_agent") or ""}
    elif kind == "opened":
        item["useragent"] = details.get("user_agent") or ""
    return item


def _resend(event: Event) -> dict[str, Any]:
    details = event.details
    data: dict[str, Any] = {
        "email_id": event.message_id,
        "created_at": event.occurred_at,
        "to": [event.recipient] if event.recipient else [],
        "from": details.get("from") or "",
        "subject": details.get("subject") or "",
        "tags": [{"name": tag, "value": "true"} for tag in event.tags],
    }
    kind = event.type.value
    if kind == "bounced":
        hard = details.get("bounce_type") == "hard"
        data["bounce"] = {
            "message": details.get("reply") or "",
            "type": "Permanent" if hard else "Transient",
            "subType": "General",
        }
    elif kind == "clicked":
        data["click"] = {
            "link": details.get("url") or "",
            "timestamp": event.occurred_at,
            "userAgent": details.get("user_agent") or "",
            "ipAddress": "",
        }
    return {"type": _RESEND[kind], "created_at": event.recorded_at, "data": data}


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def body_and_headers(dialect: str, events: list[Event], secret: str, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The request body and signature headers for ``events`` (several only for a batching dialect)."""
    first = events[0]
    if dialect == Dialect.SENDGRID:
        body = _json([_sendgrid(event) for event in events])
        return body, _sendgrid_headers(secret, timestamp, body)
    if dialect == Dialect.POSTMARK:
        body = _json(_postmark(first))
        return body, signed_headers(secret, first.id, timestamp, body)
    if dialect == Dialect.RESEND:
        body = _json(_resend(first))
        headers = signed_headers(secret, first.id, timestamp, body)
        return body, {name.replace("webhook-", "svix-"): value for name, value in headers.items()}
    body = _json({"type": first.type.value, "timestamp": first.occurred_at, "data": first.public()})
    return body, signed_headers(secret, first.id, timestamp, body)


# -- SendGrid's ECDSA key ---------------------------------------------------------------------------------------------


def new_signing_key() -> str:
    """A new P-256 private key, stored as the subscription's secret (``sgkey_`` + base64 PKCS#8 DER)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return SENDGRID_KEY_PREFIX + base64.b64encode(der).decode()


def _private_key(secret: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    if not secret.startswith(SENDGRID_KEY_PREFIX):
        raise ValueError("a sendgrid subscription's secret is the sgkey_ key Postroom generated")
    return serialization.load_der_private_key(base64.b64decode(secret.removeprefix(SENDGRID_KEY_PREFIX)), None)


def verification_key(secret: str) -> str:
    """The public key as SendGrid shows its Signed Event Webhook "verification key": base64 SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    public = _private_key(secret).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _sendgrid_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = _private_key(secret).sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }
