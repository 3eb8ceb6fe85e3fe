"""The self-throttle against DynamoDB (moto, the template's own table): shared one-second windows, SES's rate read
from the account (a botocore Stubber: moto has no GetAccount), per-domain pace for direct SMTP, and the worker
waiting for a window or deferring."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from postroom.core.clock import now_iso
from postroom.core.delivery_results import Outcome
from postroom.core.message_record import MessageRecord, RecipientState
from postroom.core.settings import Settings
from postroom.deliver.pacing import PACED_STATUS, AccountSendRate, PaceWindows, PacingFilter, reset_rate_cache
from postroom.local import template as tpl
from tests.conftest import ROOT, SENDING_DOMAINS, Stack
from tests.observability.conftest import run_worker

ACCOUNT = {
    "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 10.0},
    "SendingEnabled": True,
    "ProductionAccessEnabled": True,
    "EnforcementStatus": "HEALTHY",
    "DedicatedIpAutoWarmupEnabled": False,
}


class FakeTime:
    """A clock that only moves when the code under test sleeps: waiting is observable and costs nothing."""

    def __init__(self, start: float = 1_700_000_000.25) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _fresh_rate_cache() -> Iterator[None]:
    reset_rate_cache()
    yield
    reset_rate_cache()


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    """The template's table in moto, shared by this module's tests (each uses its own keys or seconds)."""
    with mock_aws():
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        template = tpl.load_template(ROOT / "template.yaml")
        parameters = {"SendingDomains": SENDING_DOMAINS}
        resources = tpl.create_resources(template, session, parameters=parameters, prefix="pace")
        yield resources.ref("Table")


@pytest.fixture
def windows(table: str) -> PaceWindows:
    return PaceWindows(boto3.client("dynamodb"), table)


def record(sender: str, recipients: list[str], delivery: str = "auto") -> MessageRecord:
    stamp = now_iso()
    return MessageRecord(
        id="msg_01hzzzzzzzzzzzzzzzzzzzzzzz",
        tenant="default",
        from_address=sender,
        subject="s",
        delivery=delivery,
        message_id_header="<x@shop.example>",
        recipients=[RecipientState(address=a) for a in recipients],
        created_at=stamp,
        updated_at=stamp,
    )


def settings(**values: Any) -> Settings:
    base = {"table": "t", "bucket": "b", "queue_url": "q", "dlq_url": "d", "sending_domains": SENDING_DOMAINS}
    return Settings.model_validate({**base, **values})


def test_a_window_admits_up_to_its_limit_for_every_worker(windows: PaceWindows, table: str) -> None:
    # GIVEN two workers sharing the table, and a limit of 3 per second
    other_worker = PaceWindows(boto3.client("dynamodb"), table)
    # WHEN they take from the same second
    taken = [windows.take("ses", 1, 3, 100.1), other_worker.take("ses", 2, 3, 100.5)]
    refused = other_worker.take("ses", 1, 3, 100.9)
    # THEN the limit holds across them, and the next second starts empty
    assert taken == [True, True]
    assert refused is False
    assert windows.take("ses", 3, 3, 101.0) is True
    # ... while another key has its own windows
    assert windows.take("smtp:example.org", 3, 3, 100.2) is True


def test_more_than_a_window_holds_fills_this_one_and_precharges_the_next(windows: PaceWindows, table: str) -> None:
    # GIVEN a limit of 2 per second  WHEN one message with 5 recipients takes its sends
    assert windows.take("ses", 5, 2, 200.0) is True
    # THEN seconds 200 and 201 are full and 202 holds the last one, so the average stays at the rate
    assert windows.take("ses", 1, 2, 200.5) is False
    assert windows.take("ses", 1, 2, 201.5) is False
    assert windows.take("ses", 1, 2, 202.5) is True
    assert windows.take("ses", 1, 2, 202.6) is False
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "PACE#ses#200"}, "sk": {"S": "PACE"}})[
        "Item"
    ]
    assert item["n"] == {"N": "2"}
    assert int(item["expires_at"]["N"]) > 200  # the table's TTL removes old windows


def test_the_account_rate_is_read_once_and_cached() -> None:
    # GIVEN an SES client that answers GetAccount exactly once
    ses = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(ses) as stub:
        stub.add_response("get_account", ACCOUNT)
        rate = AccountSendRate(ses)
        # WHEN the rate is asked for twice  THEN the second answer comes from the cache
        assert rate() == 14.0
        assert rate() == 14.0
        stub.assert_no_pending_responses()


def test_an_unreadable_account_rate_leaves_ses_unpaced() -> None:
    ses = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(ses) as stub:
        stub.add_client_error("get_account", "AccessDeniedException", http_status_code=403)
        assert AccountSendRate(ses)() is None


def test_ses_sends_wait_for_the_next_window_then_defer(windows: PaceWindows) -> None:
    # GIVEN SES at 2 sends per second (from the account) and a clock that moves only when the pacer waits
    fake = FakeTime(start=1_700_000_100.25)
    pacer = PacingFilter(settings(), windows, lambda: 2.0, max_wait=0.8, clock=fake.clock, sleep=fake.sleep)
    message = record("a@shop.example", ["x@one.example", "y@two.example"])
    # WHEN three messages of two recipients arrive in the same second
    first = pacer.screen(message, ["x@one.example", "y@two.example"])
    second = pacer.screen(message, ["x@one.example", "y@two.example"])
    third = pacer.screen(message, ["x@one.example", "y@two.example"])
    # THEN the first goes at once, the second after waiting for the next second ...
    assert first == []
    assert second == []
    assert fake.slept == [pytest.approx(0.75)]
    # ... and the third, which would need more than max_wait, is deferred with a congestion reply
    assert [(r.recipient, r.outcome) for r in third] == [
        ("x@one.example", Outcome.DEFERRED),
        ("y@two.example", Outcome.DEFERRED),
    ]
    assert third[0].reply.startswith(f"{PACED_STATUS} Amazon SES send rate (2/s) reached")
    assert third[0].extra == {"paced": "ses"}


def test_a_configured_ses_rate_wins_over_the_account(windows: PaceWindows) -> None:
    fake = FakeTime(start=1_700_000_200.25)
    never = pytest.fail  # the account must not be asked
    pacer = PacingFilter(
        settings(ses_max_send_rate=1), windows, lambda: never(), max_wait=0, clock=fake.clock, sleep=fake.sleep
    )
    message = record("a@shop.example", ["x@one.example"])
    assert pacer.screen(message, ["x@one.example"]) == []
    assert [r.outcome for r in pacer.screen(message, ["x@one.example"])] == [Outcome.DEFERRED]


def test_direct_smtp_is_paced_per_recipient_domain(windows: PaceWindows) -> None:
    # GIVEN one message per second allowed to each recipient domain, and no waiting
    fake = FakeTime(start=1_700_000_300.25)
    pacer = PacingFilter(
        settings(domain_rate_per_second=1), windows, lambda: None, max_wait=0, clock=fake.clock, sleep=fake.sleep
    )
    message = record("a@smtp.example", ["x@one.example", "y@one.example", "z@two.example"])
    # WHEN two messages go to one.example and two.example in the same second
    first = pacer.screen(message, ["x@one.example", "y@one.example", "z@two.example"])
    second = pacer.screen(message, ["x@one.example", "y@one.example", "z@two.example"])
    # THEN the first passes whole (two recipients at one domain are one transaction) and the second is deferred
    assert first == []
    assert {(r.recipient, r.extra["paced"]) for r in second} == {
        ("x@one.example", "smtp"),
        ("y@one.example", "smtp"),
        ("z@two.example", "smtp"),
    }
    assert "pace for one.example (1 messages/s)" in second[0].reply
    # ... and SES-path messages are not held by the domain pace
    ses_message = record("a@shop.example", ["x@one.example"])
    assert pacer.screen(ses_message, ["x@one.example"]) == []


def test_the_worker_paces_ses_sends_across_a_batch(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SES limited to one send per second
    monkeypatch.setenv("POSTROOM_SES_MAX_SEND_RATE", "1")
    from postroom.wiring.services import reset_services

    reset_services()
    # WHEN a two-recipient message and a one-recipient message are delivered in one batch
    first = {"from": "a@shop.example", "to": ["x@one.example", "y@two.example"], "subject": "1", "text": "1"}
    second = {**first, "to": ["z@three.example"], "subject": "2"}
    ids = [stack.request("POST", "/v1/messages", body)[1]["id"] for body in (first, second)]
    started = time.monotonic()
    assert run_worker(stack) == {"batchItemFailures": []}
    elapsed = time.monotonic() - started
    # THEN both were sent, and the second had to wait for the windows the first one used up
    # (accepted by SES: "sent"; "delivered" comes with SES's Delivery event)
    assert [stack.request("GET", f"/v1/messages/{i}")[1]["status"] for i in ids] == ["sent", "sent"]
    assert elapsed >= 1.0
