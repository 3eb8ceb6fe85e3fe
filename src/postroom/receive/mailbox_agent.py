"""Internal delivery: outbound mail to one of Postroom's own inbound domains is filed straight into the mailbox, the
way an MTA hands mail for its own domains to its local store instead of looking up its own MX.

Registered as a ``LocalAgent`` of the delivery worker. The MIME the worker built is stored as received mail (with
the trace headers a receiving MTA adds) and goes through the same filing as SES-received mail. Retries are safe: the
receipt id is the outbound message's id, so refiling finds the message already there.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import TYPE_CHECKING

from postroom.core.clock import utcnow
from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.mailbox.content_keys import raw_key
from postroom.receive.filing import Envelope, Filer

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.core.settings import Settings


class InternalDeliveryAgent:
    name = "internal"

    def __init__(self, *, settings: Settings, filer: Filer, s3: object) -> None:
        self._settings = settings
        self._filer = filer
        self._s3 = s3

    def handles(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self._settings.inbound_domains

    def deliver(self, record: MessageRecord, recipients: list[str], message: bytes) -> list[RecipientResult]:
        receipt_id = f"internal-{record.id}"
        now = utcnow()
        # RFC 5321 §4.4: the receiving side adds Return-Path and a Received line; the rest is the message as built.
        trace = (
            f"Return-Path: <{record.from_address}>\r\n"
            f"Received: by {self._settings.helo} (Postroom internal delivery) id {record.id};\r\n"
            f" {format_datetime(now)}\r\n"
        ).encode()
        self._s3.put_object(  # type: ignore[attr-defined]
            Bucket=self._settings.inbound_bucket,
            Key=raw_key(receipt_id),
            Body=trace + message,
            ContentType="message/rfc822",
        )
        result = self._filer.file(
            Envelope(
                receipt_id=receipt_id,
                received_at=now,
                mail_from=record.from_address,
                recipients=recipients,
                origin="internal",
            )
        )
        by_recipient: dict[str, RecipientResult] = {}
        for filed in result.filed:
            by_recipient[filed.recipient] = RecipientResult(
                filed.recipient,
                Outcome.DELIVERED,
                reply=f"250 2.0.0 filed into {filed.mailbox} as {filed.id}",
                smtp_code=250,
                enhanced_status="2.0.0",
            )
        for bounce in result.bounces:
            if not bounce.kept:  # a report to a bounce address, applied (the kept ones are in result.filed)
                by_recipient[bounce.recipient] = RecipientResult(
                    bounce.recipient,
                    Outcome.DELIVERED,
                    reply="250 2.0.0 delivery status notification applied",
                    smtp_code=250,
                    enhanced_status="2.0.0",
                )
        for rejection in result.rejected:
            by_recipient[rejection.recipient] = RecipientResult(
                rejection.recipient,
                Outcome.BOUNCED,
                reply=f"550 {rejection.status} {rejection.reason}",
                smtp_code=550,
                enhanced_status=rejection.status,
            )
        return [by_recipient[address.lower()] for address in recipients]
