"""Fault injection over the real accept path and the real worker handler, in one process.

What is real: ``postroom.accept.intake.accept`` and the worker Lambda handler (``functions/worker/app.py``, its Powertools
batch processor, ``Deliverer``, ``SmtpDeliveryAgent``, ``SesDeliveryAgent``); DynamoDB, S3, SQS and SES are moto
(in-process, created from ``template.yaml``); MX lookups go to a DNS server on loopback; SMTP goes to an aiosmtpd sink
on loopback. What is simulated: Lambda's SQS event source mapping (receive a batch, invoke, delete what succeeded)
and the passing of time (a message left invisible comes back on the next poll, as if its visibility timeout ran out).

Faults, all drawn from one seeded ``random.Random`` so that a failing run can be replayed:

* the sink answers at random 421, 451, 452, 552, 550 (at the greeting, MAIL, RCPT or after DATA), drops the
  connection after the message data (before its reply) or stalls past the client's timeout;
* SES throttles, fails (transient) or rejects (permanent), or cannot be reached;
* DynamoDB, S3 and SQS calls of the worker fail with a service error;
* the worker crashes mid-batch (the invocation dies: nothing of the batch is deleted, everything comes back).

Crashes and service errors are injected at every point of an attempt *except* between the receiving server's final
``250`` and the save of the record that says so. A crash there makes SQS hand the message out again and the recipient
get it twice; that window is inherent to at-least-once delivery (RFC 1047) and is kept as short as the worker can make
it (the save right after the transaction). Everywhere else a fault must cost nothing but a retry.

``run()`` then checks the invariants: every accepted message ends delivered, bounced or failed-and-dead-lettered with
a reason; nothing stays queued, sending or deferred; the queue is empty; and every recipient the sink (or SES)
accepted got the message exactly once, every other recipient never.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from postroom.accept.intake import accept
from postroom.accept.models import SendRequest
from postroom.core import aws
from postroom.core.auth import Principal, Scope
from postroom.core.message_record import MessageRecord
from postroom.core.status import MessageStatus, RecipientStatus
from postroom.local import template as tpl
from postroom.local.handlers import LocalFunction
from postroom.local.poller import build_sqs_event
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import Action, RecordingSink, Stage
from postroom.wiring.services import reset_services, services
from postroom.wiring.worker_batch import reset_resolver

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
SENDER_DOMAIN = "shop.example"
ARRIVALS_PER_BATCH = 8  # messages accepted before each batch is received
FINAL = {
    MessageStatus.SENT,  # SES accepted it; SES's own delivery reports settle it later (not part of this run)
    MessageStatus.DELIVERED,
    MessageStatus.PARTIALLY_DELIVERED,
    MessageStatus.BOUNCED,
    MessageStatus.FAILED,
}

# Recipient domains and what their MX does. Every "good" domain's MX is the faulty sink; the others fail in fixed ways.
ZONE = {
    "a.example": {"MX": [(10, "mx.a.example")]},
    "mx.a.example": {"A": ["127.0.0.1"]},
    "b.example": {"MX": [(10, "mx.b.example")]},
    "mx.b.example": {"A": ["127.0.0.1"]},
    "busy.example": {"MX": [(10, "mx.busy.example")]},  # the sink defers every RCPT: ends failed + dead-lettered
    "mx.busy.example": {"A": ["127.0.0.1"]},
    "down.example": {"MX": [(10, "mx.down.example")]},  # nothing listens there: deferred until failed
    "mx.down.example": {"A": ["127.0.0.3"]},
    "nullmx.example": {"MX": [(0, ".")]},  # RFC 7505: bounces at once
}
DOMAIN_WEIGHTS = {  # nxdomain.example is absent from the zone: NXDOMAIN bounces at once
    "a.example": 60,
    "b.example": 30,
    "busy.example": 2,
    "down.example": 2,
    "nullmx.example": 2,
    "nxdomain.example": 2,
}

# (stage, reply, weight): what a faulty SMTP command turns into.
SMTP_FAULTS: dict[Stage, list[tuple[str | Action, int]]] = {
    Stage.GREETING: [("421 4.3.2 service not available", 3), (Action.STALL, 1)],
    Stage.MAIL: [("421 4.4.5 too busy, closing", 2), ("451 4.3.0 local error", 2), ("452 4.3.1 no space", 1),
                 ("552 5.3.4 message size exceeds fixed limit", 1)],
    Stage.RCPT: [("450 4.2.1 mailbox busy", 2), ("451 4.3.0 try again later", 2), ("452 4.5.3 too many recipients", 1),
                 ("550 5.1.1 no such user", 2), ("421 4.4.5 closing", 1), (Action.DROP, 1)],
    Stage.DATA: [("451 4.3.0 queue write failed", 3), ("452 4.3.1 insufficient storage", 1),
                 ("552 5.2.2 mailbox full", 1), ("554 5.6.0 content rejected", 1), (Action.DROP, 3),
                 (Action.STALL, 1)],
}  # fmt: skip
SES_FAULTS = [
    ("ThrottlingException", 4),
    ("TooManyRequestsException", 1),
    ("InternalFailure", 1),
    ("MessageRejected", 2),  # permanent: bounces
    ("unreachable", 2),  # a BotoCoreError: no answer at all
]


class WorkerCrash(BaseException):
    """The Lambda execution environment died (timeout, out of memory): no handler code runs after this."""


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 20251127
    messages: int = 1000
    smtp_fault_rate: float = 0.05  # per SMTP command (greeting, MAIL, each RCPT, DATA)
    ses_share: float = 0.15  # messages sent with delivery "ses"
    ses_fault_rate: float = 0.25  # per SendEmail call
    aws_fault_rate: float = 0.01  # per DynamoDB/S3/SQS call made by the worker
    crash_rate: float = 0.001  # per fault point (≈ 6 per attempt): about 5 % of batches crash
    max_attempts: int = 5
    smtp_timeout: float = 0.25
    stall_seconds: float = 1.0
    wall_limit: float = 600.0  # the run stops by itself (and fails) past this
    # Self-test only: also crash in the at-least-once window (after the server's 250, before the record is saved).
    # The checks must then report duplicates; the suite uses it to show that they can fail.
    unsafe_crash_rate: float = 0.0


@dataclass
class Outcome:
    accepted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    dead_lettered: int = 0
    batches: int = 0
    invocations_crashed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    sink_messages: int = 0
    ses_sends: int = 0
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.accepted} accepted → {dict(self.statuses)}, {self.dead_lettered} dead-lettered; "
            f"{self.batches} batches ({self.invocations_crashed} crashed), {self.sink_messages} SMTP transactions "
            f"accepted by the sink, {self.ses_sends} SES sends; faults injected: {dict(self.injected)}; "
            f"{self.elapsed:.1f} s; {len(self.problems)} problems"
        )


class FaultySink(RecordingSink):
    """The recording sink, answering a share of commands with a random fault (after any scripted rule)."""

    def __init__(self, rng: random.Random, rate: float, injected: Counter[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rng = rng
        self._rate = rate
        self._injected = injected

    def _take(self, stage: Stage, address: str) -> str | Action | None:
        scripted = super()._take(stage, address)
        if scripted is not None or stage not in SMTP_FAULTS or self._rng.random() >= self._rate:
            return scripted
        replies, weights = zip(*SMTP_FAULTS[stage], strict=True)
        reply = self._rng.choices(replies, weights)[0]
        name = reply.value if isinstance(reply, Action) else reply.split()[0]
        self._injected[f"smtp {stage.value} {name}"] += 1
        return reply


class _Chaos:
    """Decides, at each fault point of the worker, whether to crash, fail the call, or go on."""

    def __init__(self, rng: random.Random, plan: FaultPlan, injected: Counter[str]) -> None:
        self.rng = rng
        self.plan = plan
        self.injected = injected

    def point(self, where: str, *, service_error: bool = True, crash: bool = True) -> None:
        draw = self.rng.random()
        if crash and draw < self.plan.crash_rate:
            self.injected[f"crash {where}"] += 1
            raise WorkerCrash(where)
        if service_error and draw < self.plan.crash_rate + self.plan.aws_fault_rate:
            self.injected[f"error {where}"] += 1
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": f"injected at {where}"}}, where.split()[0]
            )


class _ChaosStore:
    """The worker's MessageStore, with fault points around every call."""

    def __init__(self, store: Any, chaos: _Chaos) -> None:
        self._store = store
        self._chaos = chaos

    def get(self, message_id: str) -> Any:
        self._chaos.point("before store.get")
        return self._store.get(message_id)

    def get_many(self, message_ids: list[str]) -> Any:
        self._chaos.point("before store.get_many")
        return self._store.get_many(message_ids)

    def get_mime(self, message_id: str) -> bytes | None:
        self._chaos.point("before store.get_mime")
        return self._store.get_mime(message_id)

    def get_request(self, message_id: str) -> bytes:
        self._chaos.point("before store.get_request")
        return self._store.get_request(message_id)

    def put_mime(self, message_id: str, mime: bytes) -> None:
        self._chaos.point("before store.put_mime")
        self._store.put_mime(message_id, mime)
        self._chaos.point("after store.put_mime")

    @staticmethod
    def _records_results(record: Any) -> bool:
        return record.status is not MessageStatus.SENDING and any(
            r.status is RecipientStatus.DELIVERED and r.last_attempt_at == record.updated_at for r in record.recipients
        )

    def save(self, record: Any) -> None:
        # Not before the save that records a delivery: that is the at-least-once window (see the module docstring).
        if not self._records_results(record):
            self._chaos.point(f"before store.save ({record.status.value})")
        elif self._chaos.rng.random() < self._chaos.plan.unsafe_crash_rate:
            self._chaos.injected["crash after delivery, before store.save"] += 1
            raise WorkerCrash("after delivery")
        self._store.save(record)
        self._chaos.point(f"after store.save ({record.status.value})")

    def save_many(self, records: list[Any]) -> list[Exception | None]:
        # The batch's one write of its results: the same rule as save() (a crash just before it, when it records a
        # delivery, is the at-least-once window that the send guard closes), and the same failures per record.
        recording = [record for record in records if self._records_results(record)]
        if not recording:
            self._chaos.point(f"before store.save_many ({len(records)})")
        # The unsafe draw is per record that records a delivery, as when each record had its own save: a batch's one
        # write is that window for all of them at once.
        elif any(self._chaos.rng.random() < self._chaos.plan.unsafe_crash_rate for _ in recording):
            self._chaos.injected["crash after delivery, before store.save"] += 1
            raise WorkerCrash("after delivery")
        results = []
        for record in records:  # an injected error per record, as the store's own fallback reports them
            try:
                self._chaos.point(f"before store.save ({record.status.value})", crash=False)
            except ClientError as error:
                results.append(error)
                continue
            results.append(None)
        saved = self._store.save_many([r for r, e in zip(records, results, strict=True) if e is None])
        merged = iter(saved)
        results = [e if e is not None else next(merged) for e in results]
        self._chaos.point(f"after store.save_many ({len(records)})")
        return results


class _ChaosQueue:
    def __init__(self, queue: Any, chaos: _Chaos) -> None:
        self._queue = queue
        self._chaos = chaos

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        self._chaos.point("before queue.retry_later")
        self._queue.retry_later(receipt_handle, seconds)

    def dead_letter(self, task: Any, reason: str) -> None:
        self._chaos.point("before queue.dead_letter")
        self._queue.dead_letter(task, reason)
        self._chaos.point("after queue.dead_letter")

    def enqueue(self, task: Any, *, delay_seconds: int = 0) -> None:
        self._queue.enqueue(task, delay_seconds=delay_seconds)


class _ChaosSes:
    """The sesv2 client: SendEmail fails at random, otherwise moto sends (and the send is counted)."""

    def __init__(self, client: Any, chaos: _Chaos, sent: Counter[tuple[str, str]]) -> None:
        self._client = client
        self._chaos = chaos
        self._sent = sent

    def send_email(self, **params: Any) -> dict[str, Any]:
        self._chaos.point("before ses.send_email", service_error=False)
        if self._chaos.rng.random() < self._chaos.plan.ses_fault_rate:
            codes, weights = zip(*SES_FAULTS, strict=True)
            code = self._chaos.rng.choices(codes, weights)[0]
            self._chaos.injected[f"ses {code}"] += 1
            if code == "unreachable":
                raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "SendEmail")
        response = self._client.send_email(**params)
        message_id = _message_id(params["Content"]["Raw"]["Data"])
        for recipient in params["Destination"]["ToAddresses"]:
            self._sent[(message_id, recipient.lower())] += 1
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


_MESSAGE_ID = re.compile(rb"^Message-ID: <([0-9a-z]{26})@", re.MULTILINE | re.IGNORECASE)


def _message_id(mime: bytes) -> str:
    match = _MESSAGE_ID.search(mime)
    assert match, "every message Postroom builds carries its Message-ID"
    return "msg_" + match.group(1).decode()


def make_requests(rng: random.Random, plan: FaultPlan) -> list[SendRequest]:
    domains, weights = zip(*DOMAIN_WEIGHTS.items(), strict=True)
    requests = []
    for i in range(plan.messages):
        count = rng.choices([1, 2, 3], [70, 20, 10])[0]
        recipients = sorted({f"user{i}-{k}@{rng.choices(domains, weights)[0]}" for k in range(count)})
        requests.append(
            SendRequest.model_validate(
                {
                    "from": f"Shop <orders@{SENDER_DOMAIN}>",
                    "to": recipients[:1],
                    "cc": recipients[1:2],
                    "bcc": recipients[2:],
                    "subject": f"Order {i}",
                    "text": f"Thank you for order {i}.\n" * rng.randint(1, 40),
                    "delivery": "ses" if rng.random() < plan.ses_share else "auto",
                }
            )
        )
    return requests


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _hooks_without_event_recording() -> dict[str, list[Any]]:
    from postroom.events.observer import EventObserver
    from postroom.wiring.worker_events import delivery_hooks

    hooks = delivery_hooks()
    hooks["observers"] = [o for o in hooks["observers"] if not isinstance(o, EventObserver)]
    return hooks


def run(plan: FaultPlan, *, progress: Callable[[str], None] | None = None) -> Outcome:
    """Accept ``plan.messages`` messages, drive the worker until the queue is empty, check the invariants."""
    rng = random.Random(plan.seed)
    outcome = Outcome()
    started = time.monotonic()
    sink_rng = random.Random(rng.random())
    chaos = _Chaos(random.Random(rng.random()), plan, outcome.injected)
    ses_sent: Counter[tuple[str, str]] = Counter()
    base_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    }
    with (
        _environment(base_env),
        mock_aws(),
        FaultySink(sink_rng, plan.smtp_fault_rate, outcome.injected, stall_seconds=plan.stall_seconds) as sink,
        LoopbackDnsServer(zone=ZONE) as dns,
        warnings.catch_warnings(),
        # The delivery-event recorder is a side channel with its own tests (tests/events). It is left out here
        # because moto's TransactWriteItems deep-copies the whole table on every call, which makes a 1 000-message
        # run quadratic (minutes); the suppression filter, metrics, pacing and the send guard all stay in.
        mock.patch("postroom.wiring.worker_batch.delivery_hooks", _hooks_without_event_recording),
    ):
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        sink.script(Stage.RCPT, "450 4.2.1 mailbox busy, try later", match="@busy.example")
        template = tpl.load_template(ROOT / "template.yaml")
        params = {
            **tpl.parameter_defaults(template),
            "SendingDomains": SENDER_DOMAIN,
            "DefaultDelivery": "smtp",
            "DnsNameservers": f"127.0.0.1:{dns.port}",
            "SmtpPort": str(sink.port),
            "HeloName": "relay.postroom.test",
        }
        session = boto3.session.Session(region_name=REGION)
        resources = tpl.create_resources(template, session, parameters=params, prefix="fault")
        env = tpl.function_environment(template, "WorkerFunction", resources, params)
        env |= {
            "POSTROOM_RETRY_BASE_SECONDS": "0",
            "POSTROOM_MAX_ATTEMPTS": str(plan.max_attempts),
            "POSTROOM_SMTP_TIMEOUT": str(plan.smtp_timeout),
        }
        with _environment(env):
            reset_services()
            reset_resolver()
            session.client("ses").verify_domain_identity(Domain=SENDER_DOMAIN)
            try:
                _drive(plan, rng, chaos, resources, template, outcome, ses_sent, progress, started)
                _check(resources, sink, ses_sent, outcome)
            finally:
                reset_services()
                reset_resolver()
    outcome.elapsed = time.monotonic() - started
    return outcome


def _drive(
    plan: FaultPlan,
    rng: random.Random,
    chaos: _Chaos,
    resources: dict[str, dict[str, Any]],
    template: dict[str, Any],
    outcome: Outcome,
    ses_sent: Counter[tuple[str, str]],
    progress: Callable[[str], None] | None,
    started: float,
) -> None:
    svc = services()
    principal = Principal(key_id="fault", tenant="fault", scopes=frozenset(Scope))
    # Mail arrives while the worker works: a few messages are accepted before each batch. (This also keeps moto's
    # queue short: its SQS calls cost time in proportion to the messages held.)
    pending = iter(make_requests(rng, plan))

    def accept_some(count: int) -> None:
        for request in itertools.islice(pending, count):
            accept(request, principal, settings=svc.settings, store=svc.messages, queue=svc.queue)
            outcome.accepted += 1

    props = template["Resources"]["WorkerFunction"]["Properties"]
    worker = LocalFunction("WorkerFunction", ROOT / props["CodeUri"] / "app.py", "lambda_handler", 120, 512)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = resources["DeliveryQueue"]["Ref"]
    queue_arn = resources["DeliveryQueue"]["Arn"]
    real = (svc.messages, svc.queue, aws.client("sesv2"))
    faulty = (_ChaosStore(real[0], chaos), _ChaosQueue(real[1], chaos), _ChaosSes(real[2], chaos, ses_sent))
    max_batches = plan.messages * (plan.max_attempts + 2)  # bounded: every attempt moves a message towards the end
    idle_polls = 0
    while outcome.batches < max_batches and time.monotonic() - started < plan.wall_limit:
        accept_some(ARRIVALS_PER_BATCH)
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            idle_polls += 1
            if idle_polls >= 3 and outcome.accepted == plan.messages:
                break
            continue
        idle_polls = 0
        outcome.batches += 1
        svc.messages, svc.queue = faulty[0], faulty[1]
        aws._clients["sesv2"] = faulty[2]
        try:
            result = worker.invoke(build_sqs_event(messages, queue_arn, REGION))
        except WorkerCrash:
            outcome.invocations_crashed += 1
            result = None
        except Exception:  # noqa: BLE001 - the handler raised (e.g. all records failed): nothing is deleted
            result = None
        finally:
            svc.messages, svc.queue = real[0], real[1]
            aws._clients["sesv2"] = real[2]
        failed = {item["itemIdentifier"] for item in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if result is not None and m["MessageId"] not in failed]
        back = [m for m in messages if m not in done]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if back:  # time passes: their visibility timeout (the backoff, or the queue's after a crash) runs out
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(back)
                ],
            )
        if progress and outcome.batches % 100 == 0:
            progress(f"{outcome.batches} batches, {time.monotonic() - started:.0f} s")
    if outcome.batches >= max_batches or time.monotonic() - started >= plan.wall_limit:
        outcome.problems.append(f"the run did not settle within {max_batches} batches / {plan.wall_limit} s")


def _check(
    resources: dict[str, dict[str, Any]],
    sink: RecordingSink,
    ses_sent: Counter[tuple[str, str]],
    outcome: Outcome,
) -> None:
    svc = services()
    sqs = boto3.client("sqs", region_name=REGION)
    ddb = boto3.client("dynamodb", region_name=REGION)

    left = sqs.get_queue_attributes(
        QueueUrl=resources["DeliveryQueue"]["Ref"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    if any(int(v) for v in left.values()):
        outcome.problems.append(f"the delivery queue is not empty: {left}")

    dead: dict[str, list[str]] = {}
    dlq_url = resources["DeliveryDeadLetterQueue"]["Ref"]
    while batch := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=600
    ).get("Messages", []):
        for message in batch:
            reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "")
            dead.setdefault(json.loads(message["Body"])["id"], []).append(reason)
    outcome.dead_lettered = len(dead)

    sink_got: Counter[tuple[str, str]] = Counter()
    received = sink.messages
    outcome.sink_messages = len(received)
    for message in received:
        message_id = _message_id(message.content)
        for recipient in message.rcpt_tos:
            sink_got[(message_id, recipient.lower())] += 1
    outcome.ses_sends = sum(ses_sent.values())

    records = []
    for page in ddb.get_paginator("query").paginate(
        TableName=svc.settings.table,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "TENANT#fault#MSG"}},
    ):
        records.extend(MessageRecord.model_validate_json(item["doc"]["S"]) for item in page["Items"])
    if len(records) != outcome.accepted:
        outcome.problems.append(f"{outcome.accepted} messages accepted, {len(records)} records found: some were lost")

    for record in records:
        message_id = record.id
        outcome.statuses[record.status.value] += 1
        if record.status not in FINAL:
            outcome.problems.append(f"{message_id} ended {record.status.value}, not sent/delivered/bounced/failed")
        gave_up = any(r.status is RecipientStatus.FAILED for r in record.recipients)
        if gave_up and not record.reason:
            outcome.problems.append(f"{message_id} has failed recipients but no reason on its record")
        if gave_up or record.reason:
            reasons = dead.get(message_id, [])
            if not reasons or not all(reasons):
                outcome.problems.append(f"{message_id} gave up but is not in the dead-letter queue with a reason")
        elif message_id in dead:
            outcome.problems.append(f"{message_id} is dead-lettered but did not give up ({record.status.value})")
        for recipient in record.recipients:
            key = (message_id, recipient.address.lower())
            got = sink_got.pop(key, 0) + ses_sent.pop(key, 0)
            wanted = 1 if recipient.status in (RecipientStatus.DELIVERED, RecipientStatus.SENT) else 0
            if got != wanted:
                outcome.problems.append(
                    f"{message_id} → {recipient.address} ({recipient.status.value}) reached its server {got} times"
                )
            if recipient.status is RecipientStatus.BOUNCED and not recipient.reply:
                outcome.problems.append(f"{message_id} → {recipient.address} bounced without the server's reply")
    stray = {k: v for k, v in (sink_got + ses_sent).items() if v}
    if stray:
        outcome.problems.append(f"deliveries of no known recipient: {sorted(stray)[:5]}")
