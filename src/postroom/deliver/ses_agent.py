"""Amazon SES v2 as a delivery agent: SendEmail with the raw MIME, so SES sends exactly the bytes direct SMTP would."""

from __future__ import annotations

from typing import Any

from postroom.core.delivery_results import Outcome, RecipientResult

# SES errors worth retrying: throttling and service trouble. Everything else about a send is permanent for this message
# (content rejected, identity not verified, bad request) and retrying would only repeat the refusal.
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "SendingPausedException",  # account-level pause: an operator can lift it; keep the mail until max age
        "AccountSuspendedException",
    }
)


class SesDeliveryAgent:
    def __init__(self, sesv2: Any, *, configuration_set: str = "") -> None:
        self._ses = sesv2
        self._configuration_set = configuration_set

    def deliver(self, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]:
        from botocore.exceptions import BotoCoreError, ClientError

        params: dict[str, Any] = {
            "FromEmailAddress": mail_from,
            "Destination": {"ToAddresses": recipients},
            "Content": {"Raw": {"Data": message}},
        }
        if self._configuration_set:
            params["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._ses.send_email(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "Unknown")
            outcome = Outcome.DEFERRED if code in _TRANSIENT_CODES else Outcome.BOUNCED
            status = "4.3.0" if outcome is Outcome.DEFERRED else "5.3.0"
            reply = f"{status} Amazon SES refused the message: {code}: {error.get('Message', '')}".strip()
            return [RecipientResult(r, outcome, reply=reply, enhanced_status=status) for r in recipients]
        except BotoCoreError as exc:  # connection errors, timeouts: SES was not reached or did not answer
            reply = f"4.4.1 Amazon SES could not be reached: {exc}"
            return [RecipientResult(r, Outcome.DEFERRED, reply=reply, enhanced_status="4.4.1") for r in recipients]
        ses_id = response["MessageId"]
        return [
            RecipientResult(
                r,
                # SES accepting a message is not delivery: its Delivery/Bounce events (postroom.events) say that.
                Outcome.SENT,
                reply=f"2.0.0 accepted by Amazon SES as {ses_id}",
                enhanced_status="2.0.0",
                ses_message_id=ses_id,
                mx_host="email.amazonses.com",
                tls=True,
            )
            for r in recipients
        ]
