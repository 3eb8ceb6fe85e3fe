"""Filing one received message: route its recipients, parse the MIME from S3 once, store what the API serves, and
file a copy of the index entry into each recipient's Inbox.

Both ways in use it: the inbound function (SES, or the local listener playing SES) and the worker's internal
delivery agent (mail from Postroom to its own domains). Like Postfix's cleanup stage, it is the one place received
mail is normalised, whoever received it.

S3 layout in the inbound bucket, per received message (``receipt``):

    inbound/<receipt>                      the MIME as received (written by SES, the local listener or the worker)
    parsed/<receipt>/message.json          headers, bodies (capped), sanitized HTML, attachment list, flags
    parsed/<receipt>/parts/<part id>       each attachment decoded, served through presigned URLs

The raw MIME is never rewritten. A message whose parsing fails is still filed, with the ``parse_failed`` flag.

Recipients at the return path (``bounces+…@ReturnPathDomain``) are not mailboxes: what arrives for them goes to the
bounce processor (:mod:`postroom.receive.bounces.return_path_mail`), and only what it cannot apply is filed, into
``bounces@``.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_binary_file, policy
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.mailbox.content_keys import parsed_key, part_key, raw_key
from postroom.mailbox.mailbox_store import mail_ulid, mailbox_id, split_mailbox_id
from postroom.receive.bounces.return_path_mail import BounceOutcome, BounceRecipient
from postroom.receive.mime_parse import ParsedMail, parse_mail
from postroom.receive.routing import Destination, Rejection, route
from postroom.receive.sanitize import sanitize_html

if TYPE_CHECKING:
    from postroom.core.settings import Settings
    from postroom.mailbox.mailbox_store import MailboxStore
    from postroom.receive.bounces.return_path_mail import BounceProcessor

logger = Logger(child=True)

MAX_LISTED_ADDRESSES = 50  # per header in the index item (400 KB item limit); message.json keeps them all
MAX_REFERENCES = 20
MAX_SUBJECT = 998  # RFC 5322 §2.1.1 line limit
RECENT_COPIES = 50  # newest messages of Sent searched for a copy of an appended message


@dataclass(frozen=True)
class Envelope:
    receipt_id: str  # SES's messageId (the S3 object name), or ours for internal deliveries
    received_at: datetime
    mail_from: str
    recipients: list[str]
    origin: str  # "ses", "internal" or "local" (the local stack's listener)
    verdicts: dict[str, str] | None = None  # spam, virus, spf, dkim, dmarc: PASS / FAIL / GRAY / PROCESSING_FAILED


@dataclass
class Filed:
    recipient: str
    address: str
    mailbox: str
    id: str
    duplicate: bool


@dataclass
class FilingResult:
    filed: list[Filed] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    bounces: list[BounceOutcome] = field(default_factory=list)  # what arrived at the return path, and what became of it


class Filer:
    def __init__(
        self, *, settings: Settings, store: MailboxStore, s3: Any, bounces: BounceProcessor | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._s3 = s3
        self._bucket = settings.inbound_bucket
        self._bounces = bounces

    def route(self, recipient: str) -> Destination | Rejection | BounceRecipient:
        if self._bounces is not None:
            decided = self._bounces.route(recipient)
            if decided is not None:
                return decided
        return route(recipient, self._settings, self._store.address_exists)

    def file(self, envelope: Envelope) -> FilingResult:
        result = FilingResult()
        destinations: list[Destination] = []
        bounce_targets: list[BounceRecipient] = []
        for recipient in envelope.recipients:
            decided = self.route(recipient)
            if isinstance(decided, Rejection):
                result.rejected.append(decided)
            elif isinstance(decided, BounceRecipient):
                bounce_targets.append(decided)
            else:
                destinations.append(decided)
        if not destinations and not bounce_targets:
            # Every recipient was refused (and bounced): there is no mailbox to keep the message for.
            self._s3.delete_object(Bucket=self._bucket, Key=raw_key(envelope.receipt_id))
            return result
        with tempfile.TemporaryFile(prefix="postroom-raw-") as raw:
            self._s3.download_fileobj(self._bucket, raw_key(envelope.receipt_id), raw)
            if bounce_targets:
                raw.seek(0)
                destinations += self._process_bounces(envelope, bounce_targets, raw, result)
                if not destinations:
                    # Every report was applied: its substance is in the message records and events now.
                    self._s3.delete_object(Bucket=self._bucket, Key=raw_key(envelope.receipt_id))
                    return result
            raw.seek(0)
            mail = parse_mail(raw)
        try:
            self._store_parsed(envelope.receipt_id, mail)
        finally:
            mail.close()
        result.flags = sorted(mail.flags)
        self._store.put_receipt(
            envelope.receipt_id,
            {"raw_key": raw_key(envelope.receipt_id), "size": mail.size, "origin": envelope.origin},
        )
        received_ms = int(envelope.received_at.timestamp() * 1000)
        for destination in destinations:
            if not destination.registered:
                self._store.create_address(destination.address)  # idempotent: catch-all targets appear on first use
            box = mailbox_id(destination.address, "inbox")
            mail_id = "eml_" + mail_ulid(received_ms, envelope.receipt_id, destination.recipient)
            entry = self._index_entry(mail_id, envelope, destination, mail)
            fresh = self._store.file(box, entry)
            result.filed.append(Filed(destination.recipient, destination.address, box, mail_id, duplicate=not fresh))
        logger.info(
            "received message filed",
            extra={
                "receipt": envelope.receipt_id,
                "origin": envelope.origin,
                "filed": len(result.filed),
                "rejected": len(result.rejected),
                "size": mail.size,
                "flags": result.flags,
            },
        )
        return result

    def append(
        self, box_id: str, raw: bytes, *, keywords: list[str], received_at: datetime, origin: str = "append"
    ) -> dict[str, Any]:
        """Store a message a client hands over (IMAP APPEND: a sent copy, a draft, an import) into one mailbox, with
        its flags and internal date; returns the filed index entry (its uid included).

        The same normalising as received mail: the MIME is kept as given under a receipt of its own, parsed once, and
        indexed, so a draft or a sent copy reads, searches and expunges like any other message. Nothing is routed:
        the caller has checked that the key may write to the mailbox.
        """
        address, key = split_mailbox_id(box_id)
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        receipt_id = "app-" + mail_ulid(now_ms)
        with tempfile.TemporaryFile(prefix="postroom-raw-") as spooled:
            spooled.write(raw)
            spooled.seek(0)
            mail = parse_mail(spooled)
        try:
            if key == "sent" and mail.message_id:
                # Submission files a copy of what it sends, and many clients APPEND their own as well: the second
                # copy of one Message-ID is the first (as Gmail does), so Sent shows each message once.
                kept = self._recent_copy(box_id, mail.message_id)
                if kept is not None:
                    return kept
            self._s3.put_object(Bucket=self._bucket, Key=raw_key(receipt_id), Body=raw, ContentType="message/rfc822")
            self._store_parsed(receipt_id, mail)
        finally:
            mail.close()
        self._store.put_receipt(receipt_id, {"raw_key": raw_key(receipt_id), "size": mail.size, "origin": origin})
        envelope = Envelope(receipt_id, received_at, mail_from="", recipients=[], origin=origin)
        # The id's time part is the internal date, so the API's newest-first listing places it where the client does.
        mail_id = "eml_" + mail_ulid(int(received_at.timestamp() * 1000), receipt_id)
        entry = self._index_entry(mail_id, envelope, Destination(address, address, None), mail)
        entry["keywords"] = sorted(set(keywords))
        self._store.file(box_id, entry)
        logger.info("message appended", extra={"receipt": receipt_id, "mailbox": box_id, "size": mail.size})
        return self._store.message(box_id, mail_id)

    def _recent_copy(self, box_id: str, message_id: str) -> dict[str, Any] | None:
        """The copy of this Message-ID among the mailbox's newest messages (a duplicate arrives within seconds)."""
        for item in self._store.page(box_id, limit=RECENT_COPIES).items:
            if item.get("message_id") == message_id:
                return self._store.message(box_id, str(item["id"]))
        return None

    def _process_bounces(
        self, envelope: Envelope, targets: list[BounceRecipient], raw: Any, result: FilingResult
    ) -> list[Destination]:
        """Apply what arrived at bounce addresses; the destinations (in the bounce mailbox) of what must be kept."""
        assert self._bounces is not None  # route() only makes BounceRecipients with a processor
        # compat32, as the DSN parser expects. Bounces are small; anything large sent to a bounce address is parsed
        # in memory once (the inbound function has 1 GB for SES's 40 MB at most).
        message = message_from_binary_file(raw, policy=policy.compat32)
        kept: list[Destination] = []
        for target in targets:
            outcome = self._bounces.process(target, message, envelope.receipt_id)
            result.bounces.append(outcome)
            if outcome.kept:
                kept.append(
                    Destination(
                        target.recipient,
                        self._bounces.return_path.system_address,
                        target.message_id or None,
                        registered=False,
                        flags=(outcome.disposition.value,),
                    )
                )
        return kept

    def _store_parsed(self, receipt_id: str, mail: ParsedMail) -> None:
        uploads = list(mail.parts)
        uploads += [part for ctype, part in mail.bodies.items() if _truncated(mail, ctype)]
        for part in uploads:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=part_key(receipt_id, part.part_id),
                Body=mail.part_stream(part),
                ContentLength=part.size,
                ContentType=part.content_type,
            )
        document = {
            "headers": [{"name": name, "value": value} for name, value in mail.headers],
            "subject": mail.subject,
            "from": mail.from_,
            "to": mail.to,
            "cc": mail.cc,
            "reply_to": mail.reply_to,
            "date": mail.date,
            "message_id": mail.message_id,
            "in_reply_to": mail.in_reply_to,
            "references": mail.references,
            "text": mail.text,
            "text_truncated": mail.text_truncated,
            "html": mail.html,
            "html_sanitized": sanitize_html(mail.html) if mail.html is not None else None,
            "html_truncated": mail.html_truncated,
            "bodies": {ctype: part.part_id for ctype, part in mail.bodies.items()},
            "attachments": [
                {
                    "part": part.part_id,
                    "filename": part.filename,
                    "content_type": part.content_type,
                    "size": part.size,
                    "disposition": part.disposition,
                    "content_id": part.content_id,
                    "inline": not part.is_attachment,
                }
                for part in mail.parts
            ],
            "flags": sorted(mail.flags),
            "size": mail.size,
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=parsed_key(receipt_id),
            Body=json.dumps(document, ensure_ascii=False).encode(),
            ContentType="application/json",
        )

    @staticmethod
    def _index_entry(mail_id: str, envelope: Envelope, destination: Destination, mail: ParsedMail) -> dict[str, Any]:
        def listed(addresses: list[dict[str, str]]) -> list[dict[str, str]]:
            return addresses[:MAX_LISTED_ADDRESSES]

        def searchable(addresses: list[dict[str, str]]) -> str:
            return " ".join(f"{a['name']} <{a['email']}>" for a in addresses[:MAX_LISTED_ADDRESSES]).lower()

        flags = set(mail.flags) | set(destination.flags)
        if destination.catch_all:
            flags.add("catch_all")
        return {
            "id": mail_id,
            "receipt": envelope.receipt_id,
            "recipient": destination.recipient,
            "tag": destination.tag,
            "address": destination.address,
            "received_at": envelope.received_at.astimezone(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "envelope_from": envelope.mail_from,
            "size": mail.size,
            "subject": mail.subject[:MAX_SUBJECT],
            "from": listed(mail.from_),
            "to": listed(mail.to),
            "cc": listed(mail.cc),
            "message_id": mail.message_id,
            "in_reply_to": mail.in_reply_to,
            "references": mail.references[-MAX_REFERENCES:],
            "has_attachments": mail.has_attachments,
            "keywords": [],
            "preview": mail.preview,
            "flags": sorted(flags),
            "verdicts": envelope.verdicts,
            "origin": envelope.origin,
            "from_search": searchable(mail.from_),
            "to_search": searchable(mail.to + mail.cc),
            "subject_search": mail.subject[:MAX_SUBJECT].lower(),
            # The header block as received: a mail client's message list (IMAP's header FETCH) is answered from the
            # listing, without downloading each message. Base64: header bytes need not be UTF-8.
            **({"head": base64.b64encode(mail.head).decode()} if mail.head is not None else {}),
        }


def _truncated(mail: ParsedMail, ctype: str) -> bool:
    return mail.text_truncated if ctype == "text/plain" else mail.html_truncated
