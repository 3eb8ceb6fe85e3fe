"""The inbound function: SES's receipt rule stored the MIME in S3 (S3 action) and then invoked us (Lambda action,
asynchronous). Each record is filed; recipients that must be rejected are bounced through SES ``SendBounce``.

The Lambda action's event carries no body (and SNS would cap it at 150 KB), so the message is read from the object the
S3 action wrote: ``inbound/<messageId>`` in the inbound bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SESEvent
from botocore.exceptions import BotoCoreError, ClientError

from postroom.core import aws
from postroom.core.clock import parse_iso
from postroom.receive.filing import Envelope, FilingResult

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.ses_event import SESEventRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.receive.filing import Filer


logger = Logger(child=True)
metrics = Metrics()  # shares the function's namespace and flush (functions/inbound/app.py)

VERDICTS = ("spam", "virus", "spf", "dkim", "dmarc")  # SES receipt fields <name>Verdict: PASS/FAIL/GRAY/...


def envelope_of(record: SESEventRecord, origin: str = "ses") -> Envelope:
    mail, receipt = record.ses.mail, record.ses.receipt
    # Read from the raw receipt: SES omits a verdict it did not compute (no DMARC policy, scanning disabled).
    raw = receipt.raw_event
    verdicts = {name: str((raw.get(f"{name}Verdict") or {}).get("status") or "") for name in VERDICTS}
    return Envelope(
        receipt_id=mail.message_id,
        received_at=parse_iso(mail.timestamp),
        mail_from=mail.source,
        recipients=list(receipt.recipients),
        origin=origin,
        verdicts={name: status for name, status in verdicts.items() if status},
    )


def bounce(receipt_id: str, result: FilingResult) -> None:
    """Tell the sender about rejected recipients (SES delivers the DSN). SES allows this up to 24 h after receipt."""
    rejected = [rejection for rejection in result.rejected if rejection.notify]
    if not rejected:
        return
    domain = rejected[0].recipient.rpartition("@")[2]
    try:
        aws.client("ses").send_bounce(
            OriginalMessageId=receipt_id,
            BounceSender=f"MAILER-DAEMON@{domain}",
            BouncedRecipientInfoList=[
                {"Recipient": rejection.recipient, "BounceType": "DoesNotExist"} for rejection in rejected
            ],
        )
    except (ClientError, BotoCoreError, NotImplementedError) as error:
        # The message itself was handled; a failed bounce is logged for the operator, not retried into duplicates.
        # (NotImplementedError: what moto's in-process SES says; SendBounce has no emulation.)
        logger.warning("could not bounce rejected recipients", extra={"receipt": receipt_id, "error": str(error)})


def _bounce_metrics(result: FilingResult) -> None:
    """Mail at the return path: what was applied, what was kept for a person (an alarm can watch
    BouncesUnprocessed), and bounce addresses refused as forged."""
    from postroom.receive.bounces.return_path_mail import Disposition

    counts = {disposition: 0 for disposition in Disposition}
    for outcome in result.bounces:
        counts[outcome.disposition] += 1
    refused = sum(1 for rejection in result.rejected if not rejection.notify)
    for name, value in (
        ("BouncesApplied", counts[Disposition.APPLIED]),
        ("BouncesUnprocessed", counts[Disposition.UNPROCESSED]),
        ("AutoRepliesReceived", counts[Disposition.AUTO_REPLY]),
        ("BounceAddressesRefused", refused),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def handle_ses(event: dict[str, Any], context: LambdaContext, worker: Filer) -> dict[str, Any]:
    """``worker`` comes from the function's wiring (:func:`postroom.wiring.receive_wiring.filer`)."""
    ses_event = SESEvent(event)
    origin = event.get("postroomOrigin", "ses")  # the local listener marks its events; SES sends none
    outcome: list[dict[str, Any]] = []
    for record in ses_event.records:
        envelope = envelope_of(record, origin)
        result = worker.file(envelope)
        if origin == "ses":
            bounce(envelope.receipt_id, result)
        metrics.add_metric(name="MessagesFiled", unit=MetricUnit.Count, value=len(result.filed))
        metrics.add_metric(name="RecipientsRejected", unit=MetricUnit.Count, value=len(result.rejected))
        if result.flags:
            metrics.add_metric(name="MessagesFlagged", unit=MetricUnit.Count, value=1)
        _bounce_metrics(result)
        outcome.append(
            {
                "receipt": envelope.receipt_id,
                "filed": [{"recipient": f.recipient, "mailbox": f.mailbox, "id": f.id} for f in result.filed],
                "rejected": [
                    {"recipient": r.recipient, "status": r.status, "reason": r.reason} for r in result.rejected
                ],
                "flags": result.flags,
                "bounces": [
                    {
                        "recipient": b.recipient,
                        "message_id": b.message_id,
                        "disposition": b.disposition.value,
                        "bounced": [e.recipient for e in b.events if e.applied],
                        "reason": b.reason,
                    }
                    for b in result.bounces
                ],
            }
        )
    # "disposition" is what a RequestResponse Lambda action reads; for the asynchronous action it is ignored.
    return {"disposition": "CONTINUE", "messages": outcome}
