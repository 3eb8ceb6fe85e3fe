"""Failover between paths, fault-style, with a fake clock: the real Deliverer, SES agent (moto behind a throttle that
the test switches on), SMTP agent (loopback DNS and sink) and failover state in the table.

* SES throttled for 10 minutes: after ``failover_after`` throttled attempts the domain's mail goes direct; a probe
  after the hold period finds SES still throttled and stays; the first probe after the fault goes back to SES. No
  message is lost, each recipient's record names the path that carried it, and exactly two switches happen.
* A recipient MX answering 421 to every connection: a direct-SMTP domain moves to SES.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from postroom.accept.delivery_queue import DeliveryTask
from postroom.accept.models import SendRequest
from postroom.core import aws
from postroom.core.auth import ALL_SCOPES, Principal
from postroom.core.status import MessageStatus
from postroom.deliver.deliverer import Deliverer
from postroom.deliver.failover import FailoverRouter
from postroom.deliver.ses_agent import SesDeliveryAgent
from postroom.testing.smtp_peers import RecordingSink, Stage
from postroom.wiring.services import services
from postroom.wiring.worker_batch import smtp_agent
from tests.events.conftest import EventsStack

MINUTE = 60.0
# Now, so that the records' created_at (wall time) and the attempts' fake time agree on the message's age.
START = float(int(time.time()))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class ThrottledSes:
    """The moto SES client, answering ThrottlingException while the fault window is open."""

    def __init__(self, client: Any, clock: Clock, start: float, end: float) -> None:
        self._client = client
        self._clock = clock
        self._window = (start, end)
        self.throttled = 0

    def send_email(self, **params: Any) -> dict[str, Any]:
        if self._window[0] <= self._clock() < self._window[1]:
            self.throttled += 1
            error = {"Error": {"Code": "ThrottlingException", "Message": "Maximum sending rate exceeded."}}
            raise ClientError(error, "SendEmail")  # type: ignore[arg-type]
        return self._client.send_email(**params)  # type: ignore[no-any-return]


def _run(
    events_stack: EventsStack, clock: Clock, ses: Any, sender: str, minutes: int, switches: list[tuple[float, str]]
) -> tuple[list[str], dict[str, float]]:
    """One message a minute from ``sender``; every unfinished message is attempted again each minute."""
    svc = services()
    router = FailoverRouter(
        aws.client("dynamodb"),
        svc.settings.table,
        domains=frozenset({sender.rpartition("@")[2]}),
        failover_after=2,
        hold_seconds=300,
        on_switch=lambda switch: switches.append((clock() - START, switch.to.value)),
        clock=clock,
    )
    principal = Principal(key_id="test", tenant="default", scopes=ALL_SCOPES)
    first_by_path: dict[str, float] = {}
    ids: list[str] = []
    with smtp_agent(svc.settings) as smtp:
        deliverer = Deliverer(
            settings=svc.settings,
            store=svc.messages,
            queue=svc.queue,
            ses=SesDeliveryAgent(ses),
            smtp=smtp,
            routers=[router],
        )
        for minute in range(minutes):
            clock.now = START + minute * MINUTE
            request = SendRequest.model_validate(
                {"from": sender, "to": [f"r{minute}@example.org"], "subject": f"m{minute}", "text": "hello"}
            )
            ids.append(svc.accept(request, principal).id)
            for msg_id in ids:
                if svc.messages.get(msg_id).status.is_final:
                    continue
                deliverer.attempt(DeliveryTask(msg_id), now=clock.datetime())
                for recipient in svc.messages.get(msg_id).recipients:
                    if recipient.status.value in ("sent", "delivered") and recipient.delivery:
                        first_by_path.setdefault(recipient.delivery, clock() - START)
    return ids, first_by_path


def test_ses_throttled_for_ten_minutes_fails_over_to_direct_and_back(
    events_stack: EventsStack, sink: RecordingSink
) -> None:
    clock = Clock()
    ses = ThrottledSes(aws.client("sesv2"), clock, START, START + 10 * MINUTE)
    switches: list[tuple[float, str]] = []
    # GIVEN shop.example sends through SES (its primary) and SES throttles from t=0 to t=10 min
    ids, first = _run(events_stack, clock, ses, "orders@shop.example", 20, switches)
    # THEN the domain moved to direct SMTP after two throttled attempts, and back to SES once SES recovered: two
    # switches, no flapping (the probe at t=6 min found SES still throttled and stayed on SMTP)
    assert [to for _, to in switches] == ["smtp", "ses"]
    switch_to_smtp, switch_back = (at for at, _ in switches)
    assert switch_to_smtp == 1 * MINUTE  # fault start → switch: the second throttled attempt
    assert first["smtp"] == 1 * MINUTE  # fault start → first delivery on the other path (retried in the same minute)
    assert 10 * MINUTE <= switch_back <= 12 * MINUTE
    # AND nothing was lost: every message went out, each recipient's record names its path
    paths = {}
    for msg_id in ids:
        record = services().messages.get(msg_id)
        assert record.status in (MessageStatus.SENT, MessageStatus.DELIVERED), record
        paths[record.subject] = record.recipients[0].delivery
    assert paths["m0"] == "smtp"  # throttled twice on SES, then carried by SMTP
    assert paths["m5"] == "smtp"
    assert paths["m19"] == "ses"
    assert {m.rcpt_tos[0] for m in sink.messages} == {
        f"r{n}@example.org" for n, p in enumerate(paths.values()) if p == "smtp"
    }
    assert ses.throttled >= 3  # two before the switch, at least one failed probe


def test_a_recipient_mx_answering_421_moves_a_direct_domain_to_ses(
    events_stack: EventsStack, sink: RecordingSink
) -> None:
    clock = Clock()
    ses = ThrottledSes(aws.client("sesv2"), clock, 0, 0)  # SES healthy
    sink.script(Stage.GREETING, "421 4.3.2 try again later")
    switches: list[tuple[float, str]] = []
    # GIVEN smtp.example sends direct, and every connection to the MX is answered 421
    ids, first = _run(events_stack, clock, ses, "orders@smtp.example", 4, switches)
    # THEN after two deferred attempts its mail goes through SES, and every message is sent
    assert [to for _, to in switches] == ["ses"]
    assert first["ses"] == 1 * MINUTE
    assert all(services().messages.get(msg_id).status is MessageStatus.SENT for msg_id in ids)
    assert sink.messages == []
