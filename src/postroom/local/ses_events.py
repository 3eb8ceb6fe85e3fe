"""What SES event publishing does, for the local stack.

moto records what SES sends but publishes no configuration-set events. This publisher stands in for that part of
AWS: it watches moto's sent messages (the moto server runs in this process) and publishes the event documents SES
would publish to the SNS topic of the template's ``AWS::SES::ConfigurationSetEventDestination`` - from there the
template's own subscription, queue and events function take over, exactly as on AWS.

Recipients behave like SES's mailbox simulator: ``bounce@simulator.amazonses.com`` bounces (Permanent),
``complaint@simulator.amazonses.com`` is delivered and then complains, every other address is delivered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from email import message_from_string, policy
from email.utils import getaddresses, parseaddr
from typing import Any

log = logging.getLogger("postroom.local")

SIMULATOR_BOUNCE = "bounce@simulator.amazonses.com"
SIMULATOR_COMPLAINT = "complaint@simulator.amazonses.com"
# SES publishes some seconds after accepting a message; waiting a little keeps the local order realistic (the worker
# has saved the send by then, so the events function rarely has to put an event back).
PUBLISH_DELAY_SECONDS = 0.5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mail(message: Any, configuration_set: str) -> dict[str, Any]:
    parsed = message_from_string(message.raw_data, policy=policy.default)
    recipients = list(dict.fromkeys(parseaddr(d)[1] for d in message.destinations if parseaddr(d)[1]))
    headers = [{"name": name, "value": str(value)} for name, value in parsed.items()]
    return {
        "timestamp": _now(),
        "source": parseaddr(message.source or "")[1],
        "messageId": message.id,
        "destination": recipients,
        "headersTruncated": False,
        "headers": headers,
        "commonHeaders": {
            "from": [str(parsed.get("From", ""))],
            "to": [addr for _, addr in getaddresses([str(parsed.get("To", ""))]) if addr],
            "messageId": str(parsed.get("Message-ID", "")),
            "subject": str(parsed.get("Subject", "")),
        },
        "tags": {"ses:configuration-set": [configuration_set]},
    }


def documents(message: Any, configuration_set: str) -> list[dict[str, Any]]:
    """The events SES would publish for one sent message."""
    mail = _mail(message, configuration_set)
    found: list[dict[str, Any]] = [{"eventType": "Send", "mail": mail, "send": {}}]
    for recipient in mail["destination"]:
        if recipient.lower() == SIMULATOR_BOUNCE:
            found.append(
                {
                    "eventType": "Bounce",
                    "mail": mail,
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": "General",
                        "bouncedRecipients": [
                            {
                                "emailAddress": recipient,
                                "action": "failed",
                                "status": "5.1.1",
                                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                            }
                        ],
                        "timestamp": _now(),
                        "feedbackId": f"local-{message.id}-bounce",
                        "reportingMTA": "dsn; local.amazonses.test",
                    },
                }
            )
            continue
        found.append(
            {
                "eventType": "Delivery",
                "mail": mail,
                "delivery": {
                    "timestamp": _now(),
                    "processingTimeMillis": 1,
                    "recipients": [recipient],
                    "smtpResponse": "250 2.6.0 Message received (local SES emulation)",
                    "reportingMTA": "local.amazonses.test",
                },
            }
        )
        if recipient.lower() == SIMULATOR_COMPLAINT:
            found.append(
                {
                    "eventType": "Complaint",
                    "mail": mail,
                    "complaint": {
                        "complainedRecipients": [{"emailAddress": recipient}],
                        "timestamp": _now(),
                        "feedbackId": f"local-{message.id}-complaint",
                        "complaintFeedbackType": "abuse",
                    },
                }
            )
    return found


class SesEventPublisher(threading.Thread):
    def __init__(
        self, *, sns: Any, topic_arn: str, configuration_set: str, account_id: str, region: str, interval: float = 0.2
    ) -> None:
        super().__init__(name="ses-event-publisher", daemon=True)
        self._sns = sns
        self._topic = topic_arn
        self._configuration_set = configuration_set
        self._account = account_id
        self._region = region
        self._interval = interval
        self._stopping = threading.Event()
        self._seen = self._backend_messages_count()
        self._first_seen: dict[str, float] = {}

    def stop(self) -> None:
        self._stopping.set()

    def _backend_messages_count(self) -> int:
        # moto's backends live as long as the process: sends of an earlier local stack in it are not this one's.
        from moto.ses.models import ses_backends

        return len(ses_backends[self._account][self._region].sent_messages)

    def run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.publish_new()
            except Exception:  # the emulator went away at shutdown, or a transient error: keep going
                if self._stopping.is_set():
                    return
                log.exception("local SES event publishing failed; retrying")

    def publish_new(self, *, delay: float = PUBLISH_DELAY_SECONDS) -> int:
        from moto.ses.models import RawMessage, ses_backends

        sent = ses_backends[self._account][self._region].sent_messages
        published = 0
        while self._seen < len(sent):
            message = sent[self._seen]
            first = self._first_seen.setdefault(message.id, time.monotonic())
            if time.monotonic() - first < delay:
                break
            self._seen += 1
            self._first_seen.pop(message.id, None)
            if not isinstance(message, RawMessage):
                continue  # Postroom only sends raw MIME
            for document in documents(message, self._configuration_set):
                self._sns.publish(TopicArn=self._topic, Message=json.dumps(document))
                published += 1
        return published
