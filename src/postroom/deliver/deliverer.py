"""One delivery attempt for one queued message: read the record, build (or reuse) the MIME, hand each pending
recipient to its agent, record per-recipient results, and decide what happens next.

The worker never loses a message: every path ends with the record saved in a state that says what happened —
delivered, bounced, failed with a reason (and dead-lettered), or deferred with the time of the next attempt. An attempt
that crashed after a remote accepted the message (the record still says "sending") is completed first, from the
results the send guard stored, before any give-up or filter can decide those recipients otherwise. A
message whose processing keeps crashing the function never reaches such a save by itself; once SQS has handed it over
``poison_receive_count`` times, the worker gives up on it without attempting it again. If that give-up crashes too, the
exception leaves the pointer in the queue, for the next receive or, at last, the queue's redrive.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aws_lambda_powertools import Logger

from postroom.accept.delivery_queue import DeliveryTask
from postroom.accept.mime_build import build_message, render
from postroom.accept.models import SendRequest
from postroom.core.clock import isoformat, parse_iso, utcnow
from postroom.core.delivery_results import RecipientResult
from postroom.core.settings import DeliveryPath
from postroom.core.status import MessageStatus
from postroom.deliver.path_policy import backoff_seconds, choose_path, crash_give_up_reason, give_up_reason

if TYPE_CHECKING:
    from email.message import EmailMessage

    from postroom.accept.delivery_queue import DeliveryQueue
    from postroom.core.message_record import MessageRecord
    from postroom.core.message_store import MessageStore
    from postroom.core.settings import Settings
    from postroom.deliver.return_path import ReturnPath

logger = Logger(child=True)


class SesAgent(Protocol):
    def deliver(self, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]: ...


class SmtpAgent(Protocol):
    def deliver(self, domain: str, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]: ...


class RecipientFilter(Protocol):
    """Decides some recipients without sending (e.g. the suppression list): returns results only for those."""

    def screen(self, record: MessageRecord, recipients: list[str]) -> list[RecipientResult]: ...


@runtime_checkable
class BatchFilter(Protocol):
    """A RecipientFilter that can look up a whole batch at once before its records are screened one by one (one
    suppression BatchGetItem, one pace reservation per domain, instead of one call per message)."""

    def prepare(self, records: list[MessageRecord]) -> None: ...


class LocalAgent(Protocol):
    """Delivers to recipients Postroom hosts itself (its own inbound domains), instead of SES or SMTP."""

    name: str

    def handles(self, address: str) -> bool: ...

    def deliver(self, record: MessageRecord, recipients: list[str], message: bytes) -> list[RecipientResult]: ...


class SendGuard(Protocol):
    """Runs one remote send (a recipient group handed to SES or to one domain's MX) at most once per attempt of those
    recipients, so a redelivery after a crash between the remote's acceptance and the record's save replays the
    result instead of sending again (see postroom.deliver.send_once)."""

    def __call__(
        self, record: MessageRecord, path: str, recipients: list[str], send: Callable[[], list[RecipientResult]]
    ) -> list[RecipientResult]: ...

    def stored(self, record: MessageRecord, path: str, recipients: list[str]) -> list[RecipientResult] | None:
        """The results a completed send of this group in this attempt stored, without sending; None if none."""
        ...


@runtime_checkable
class BatchGuard(Protocol):
    """A SendGuard that can claim a batch's sends in one write before they go out (see postroom.deliver.send_once)."""

    def claim_many(self, sends: list[tuple[MessageRecord, str, list[str]]]) -> None: ...


class _SendDirectly:
    """No guard (a stack without an idempotency table): every call sends, and nothing is stored."""

    # The parameter names match SendGuard's: a protocol's methods may be called by keyword, so mypy compares names.
    def __call__(
        self, record: MessageRecord, path: str, recipients: list[str], send: Callable[[], list[RecipientResult]]
    ) -> list[RecipientResult]:
        return send()

    def stored(self, record: MessageRecord, path: str, recipients: list[str]) -> list[RecipientResult] | None:
        return None


class AttemptObserver(Protocol):
    """Told about every attempt once its results are recorded (events, metrics). Must not raise."""

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None: ...


@runtime_checkable
class BatchObserver(Protocol):
    """An AttemptObserver that takes a batch's attempts in one call (the event writes of a batch in one request)."""

    def attempted_many(self, attempts: list[tuple[MessageRecord, list[tuple[RecipientResult, str]]]]) -> None: ...


class MessageDecorator(Protocol):
    """Changes the built message once, before it is stored and sent (tracking links, List-Unsubscribe)."""

    def decorate(self, record: MessageRecord, request: SendRequest, message: EmailMessage) -> None: ...


class RequestResolver(Protocol):
    """Completes a stored request before the MIME is built from it (e.g. reads the uploads it refers to)."""

    def resolve(self, record: MessageRecord, request: SendRequest) -> SendRequest: ...


class PathRouter(Protocol):
    """Moves an attempt to another path than its primary (failover), and learns from each attempt's results."""

    def route(self, record: MessageRecord, primary: DeliveryPath) -> DeliveryPath: ...

    def observe(self, record: MessageRecord, primary: DeliveryPath, used: DeliveryPath, results: list[Any]) -> None: ...


class HoldPolicy(Protocol):
    """Says whether a message must wait without being attempted (e.g. its tenant's sending is paused): the seconds
    until the worker looks again, or None to go on. Must not hold a message it cannot tell apart from others."""

    def hold_seconds(self, tenant: str, sender_domain: str) -> int | None: ...


@dataclass(frozen=True)
class AttemptResult:
    message_id: str
    status: MessageStatus | None  # None: nothing to do (unknown id)
    retry_in: int | None = None  # seconds until the next attempt, when deferred


@dataclass
class _Job:
    """One queued message of a batch as it goes through the phases of :meth:`Deliverer.attempt_batch`."""

    task: DeliveryTask
    received: int
    record: MessageRecord | None = None
    path: DeliveryPath = DeliveryPath.SES
    primary: DeliveryPath = DeliveryPath.SES  # the path chosen before a router (failover) redirected this attempt
    started: datetime | None = None
    results: list[tuple[RecipientResult, str]] | None = None
    outcome: AttemptResult | Exception | None = None  # set once the job is decided (an exception: it failed)
    sends: list[_Send] | None = None


@dataclass
class _Send:
    """One remote hand-over of an attempt (SES, the relay, or one domain's MX), made behind the send guard."""

    path: str
    recipients: list[str]
    send: Callable[[], list[RecipientResult]]


class Deliverer:
    def __init__(
        self,
        *,
        settings: Settings,
        store: MessageStore,
        queue: DeliveryQueue,
        ses: SesAgent,
        smtp: SmtpAgent,
        filters: list[RecipientFilter] | None = None,
        local: list[LocalAgent] | None = None,
        observers: list[AttemptObserver] | None = None,
        relay: SmtpAgent | None = None,
        send_guard: SendGuard | None = None,
        decorators: list[MessageDecorator] | None = None,
        return_path: ReturnPath | None = None,
        holds: list[HoldPolicy] | None = None,
        resolvers: list[RequestResolver] | None = None,
        routers: list[PathRouter] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._queue = queue
        self._ses = ses
        self._smtp = smtp
        self._filters = filters or []
        self._local = local or []
        self._observers = observers or []
        self._relay = relay
        self._guard: SendGuard = send_guard or _SendDirectly()
        self._decorators = decorators or []
        self._return_path = return_path
        self._holds = holds or []
        self._resolvers = resolvers or []
        self._routers = routers or []

    def attempt(self, task: DeliveryTask, now: datetime | None = None, *, received: int = 1) -> AttemptResult:
        """One message on its own: a batch of one. ``received``: how many times SQS has handed this pointer over,
        this time included."""
        outcome = self.attempt_batch([(task, received)], now)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def attempt_batch(
        self, items: list[tuple[DeliveryTask, int]], now: datetime | None = None
    ) -> list[AttemptResult | Exception]:
        """Attempt a batch of queued messages (task, receive count); per message, its result or the exception that
        failed it (that message alone is retried; the others are not).

        The AWS work of a batch is shared (issue 21): one BatchGetItem reads the records, one TransactWriteItems
        claims the ones to send (``sending``, the attempt counted), the filters look up the whole batch at once, the
        sends go out message by message (each behind the send guard, whose write follows the remote's answer at once),
        one TransactWriteItems saves the results and the observers record the batch's events together. A message
        whose record is not in a usual state (finished, stale, a crashed attempt to complete, to give up on) takes
        its own path as before."""
        now = now or utcnow()
        jobs = [_Job(task, received) for task, received in items]
        try:
            records = self._store.get_many([job.task.message_id for job in jobs])
        except Exception as exc:  # noqa: BLE001 - each message of the batch is retried
            return [exc for _ in jobs]
        for job in jobs:
            try:
                job.outcome = self._prepare(job, records.get(job.task.message_id), now)
            except Exception as exc:  # noqa: BLE001 - this message alone is retried
                job.outcome = exc
        claimed = self._claim([job for job in jobs if job.outcome is None])
        if claimed:
            for recipient_filter in self._filters:
                if isinstance(recipient_filter, BatchFilter):
                    try:
                        recipient_filter.prepare([job.record for job in claimed if job.record is not None])
                    except Exception:
                        logger.warning("batch lookup of a recipient filter failed; screening one by one", exc_info=True)
            planned = []
            for job in claimed:
                assert job.record is not None
                try:
                    mime = self._mime(job.record, job.task)
                    job.primary = job.path
                    for router in self._routers:  # after the "sending" claim: a replay after a crash uses the primary
                        job.path = router.route(job.record, job.path)
                    job.results, job.sends = self._plan(job.path, job.record, mime)
                    planned.append(job)
                except Exception as exc:  # noqa: BLE001 - the record stays "sending"; the redelivery completes it
                    job.outcome = exc
            if isinstance(self._guard, BatchGuard):
                self._guard.claim_many(
                    [(job.record, s.path, s.recipients) for job in planned if job.record for s in job.sends or []]
                )
            for job in planned:
                assert job.record is not None
                assert job.results is not None
                try:
                    for planned_send in job.sends or []:
                        sent = self._guard(job.record, planned_send.path, planned_send.recipients, planned_send.send)
                        job.results.extend((result, planned_send.path) for result in sent)
                    for router in self._routers:
                        router.observe(job.record, job.primary, job.path, job.results)
                except Exception as exc:  # noqa: BLE001 - the record stays "sending"; the redelivery completes it
                    job.outcome = exc
            self._conclude_many([job for job in claimed if job.outcome is None], now)
        return [job.outcome if job.outcome is not None else AttemptResult(job.task.message_id, None) for job in jobs]

    def _prepare(self, job: _Job, record: MessageRecord | None, now: datetime) -> AttemptResult | None:
        """Decide a message that needs no send (or completes a crashed one); None: it is to be attempted."""
        task, received = job.task, job.received
        if record is None:
            # Only possible for a hand-crafted queue message: the API queues after the record is written.
            logger.error("queued id has no message record; dropping the pointer", extra={"message_id": task.message_id})
            return AttemptResult(task.message_id, None)
        if record.status.is_final:
            # A redelivered pointer for a finished message (SQS delivers at least once): nothing to send again.
            return AttemptResult(record.id, record.status)
        if record.status is MessageStatus.SCHEDULED and task.send_at != record.send_at:
            # A firing of a schedule made for another send_at (the message was rescheduled since): not due yet.
            logger.info("stale schedule firing dropped", extra={"message_id": record.id, "fired_for": task.send_at})
            return AttemptResult(record.id, record.status)

        held = self._held(record, task)
        if held is not None:
            return held

        path = choose_path(record.delivery, record.from_address.rpartition("@")[2], self._settings)
        # A scheduled message ages from its send_at, not from when it was accepted (possibly months before).
        started = parse_iso(record.send_at or record.created_at)
        crashed = crash_give_up_reason(received=received, attempts=record.attempts, settings=self._settings)
        if record.status is MessageStatus.SENDING:
            # The last attempt crashed before its results were saved, possibly after a remote had accepted the
            # message. What the guard stored for it completes that attempt now: the give-ups below would fail those
            # recipients (crashed attempts count towards both limits), and the filters could suppress or defer them.
            try:
                replayed = self._stored_results(path, record)
            except Exception:
                if not crashed:
                    raise
                # At the crash-loop threshold the worker must have the last word, or the redrive parks the pointer
                # with the record left "sending": a lookup that keeps failing does not stop the give-up below.
                logger.exception("could not read the send guard's stored results; giving up without them")
                replayed = []
            if replayed:
                logger.info(
                    "completing a crashed attempt from the send guard's stored results",
                    extra={"message_id": record.id, "attempt": record.attempts, "recipients": len(replayed)},
                )
                return self._conclude(record, task, path, replayed, now, started)

        # A message whose processing keeps crashing the function is not attempted again: the crash is likely in the
        # attempt itself, and the queue's redrive would soon park it with no reason and its record left "sending".
        if crashed:
            return self._give_up(record, task, crashed, now)

        reason = give_up_reason(attempts=record.attempts, created_at=started, now=now, settings=self._settings)
        if reason:
            return self._give_up(record, task, reason, now)

        record.move_to(MessageStatus.SENDING)
        record.attempts += 1
        record.updated_at = isoformat(now)
        job.record, job.path, job.started = record, path, started
        return None

    def _held(self, record: MessageRecord, task: DeliveryTask) -> AttemptResult | None:
        """A held message goes back on the queue as a new pointer with a delay, and this one is done: no attempt is
        counted and SQS's receive count starts afresh, so neither the give-ups nor the queue's redrive can end a
        message because its hold lasted long. (A crashed attempt, status "sending", is completed first.)"""
        if not self._holds or record.status is MessageStatus.SENDING:
            return None
        domain = record.from_address.rpartition("@")[2].lower()
        for hold in self._holds:
            seconds = hold.hold_seconds(record.tenant, domain)
            if seconds is not None:
                self._queue.enqueue(task, delay_seconds=seconds)
                logger.info("message held", extra={"message_id": record.id, "hold_seconds": seconds})
                return AttemptResult(record.id, record.status)
        return None

    def _claim(self, jobs: list[_Job]) -> list[_Job]:
        """Save the batch's records as "sending" in one write; returns the jobs whose claim held. A crash from here on
        leaves "sending", and SQS redelivers the pointer; a record changed meanwhile fails its own job only."""
        errors = self._store.save_many([job.record for job in jobs if job.record is not None])
        claimed = []
        for job, error in zip(jobs, errors, strict=True):
            if error is None:
                claimed.append(job)
            else:
                job.outcome = error
        return claimed

    def _conclude_many(self, jobs: list[_Job], now: datetime) -> None:
        """:meth:`_conclude` for a batch: the records that end or wait are saved in one write, then observed
        together."""
        stamp = isoformat(utcnow())
        saving: list[_Job] = []
        for job in jobs:
            record = job.record
            assert record is not None
            assert job.results is not None
            assert job.started is not None
            try:
                retry_in, later = self._settle(record, job.results, now, job.started, stamp)
                if later:
                    job.outcome = self._give_up(record, job.task, later, now, job.results)
                    continue
            except Exception as exc:  # noqa: BLE001 - this message alone is retried
                job.outcome = exc
                continue
            job.outcome = AttemptResult(record.id, record.status, retry_in)
            saving.append(job)
        errors = self._store.save_many([job.record for job in saving if job.record is not None])
        saved = []
        for job, error in zip(saving, errors, strict=True):
            if error is not None:
                job.outcome = error
            else:
                saved.append(job)
        self._observe(
            [(job.record, job.results) for job in saved if job.record is not None and job.results is not None]
        )
        for job in saved:
            assert job.record is not None
            assert isinstance(job.outcome, AttemptResult)
            self._log_attempt(job.record, job.path, job.outcome.retry_in)

    def _settle(
        self,
        record: MessageRecord,
        results: list[tuple[RecipientResult, str]],
        now: datetime,
        started: datetime,
        stamp: str,
    ) -> tuple[int | None, str | None]:
        """Apply one attempt's results to the record: (seconds until the retry, None) or (None, why to give up)."""
        by_address = {r.address.lower(): r for r in record.recipients}
        for result, agent in results:
            by_address[result.recipient.lower()].record(result, agent, stamp)
        status = record.settle()
        retry_in = None
        if status is MessageStatus.DEFERRED:
            later = give_up_reason(attempts=record.attempts, created_at=started, now=now, settings=self._settings)
            if later:
                return None, later
            retry_in = backoff_seconds(record.attempts, self._settings)
            record.next_attempt_at = isoformat(now + timedelta(seconds=retry_in))
        else:
            record.next_attempt_at = None
        record.updated_at = stamp
        return retry_in, None

    def _observe(self, attempts: list[tuple[MessageRecord, list[tuple[RecipientResult, str]]]]) -> None:
        if not attempts:
            return
        for observer in self._observers:
            if isinstance(observer, BatchObserver):
                observer.attempted_many(attempts)
            else:
                for record, results in attempts:
                    observer.attempted(record, results)

    @staticmethod
    def _log_attempt(record: MessageRecord, path: DeliveryPath, retry_in: int | None) -> None:
        logger.info(
            "delivery attempt finished",
            extra={
                "message_id": record.id,
                "status": record.status.value,
                "delivery": path.value,
                "attempt": record.attempts,
                "retry_in": retry_in,
            },
        )

    def _conclude(
        self,
        record: MessageRecord,
        task: DeliveryTask,
        path: DeliveryPath,
        results: list[tuple[RecipientResult, str]],
        now: datetime,
        started: datetime,
    ) -> AttemptResult:
        """Record one attempt's results, decide what follows (done, retry later, or give up) and save."""
        stamp = isoformat(utcnow())
        retry_in, later = self._settle(record, results, now, started, stamp)
        if later:
            return self._give_up(record, task, later, now, results)
        self._store.save(record)
        self._observe([(record, results)])
        self._log_attempt(record, path, retry_in)
        return AttemptResult(record.id, record.status, retry_in)

    def _mime(self, record: MessageRecord, task: DeliveryTask) -> bytes:
        # A MIME exists once an earlier attempt built it (it counted itself before building) or the raw endpoint
        # stored it at accept (and set the size): only then is it read back. A first attempt knows there is none,
        # and does not pay for the miss.
        if record.attempts > 1 or record.size is not None:
            existing = self._store.get_mime(record.id)
            if existing is not None:
                return existing
        body = task.request.encode() if task.request is not None else self._store.get_request(record.id)
        request = SendRequest.model_validate(json.loads(body))
        for resolver in self._resolvers:
            request = resolver.resolve(record, request)
        message = build_message(request, message_id=record.message_id_header, date=parse_iso(record.created_at))
        for decorator in self._decorators:
            decorator.decorate(record, request, message)
        mime = render(message)
        self._store.put_mime(record.id, mime)
        record.size = len(mime)
        return mime

    def _stored_results(self, path: DeliveryPath, record: MessageRecord) -> list[tuple[RecipientResult, str]]:
        """The results the guard holds for the pending recipients' current attempt, group by group as
        :meth:`_deliver` forms them (a group a filter had narrowed is found by the guard's replay in the attempt)."""
        remote = [r.address for r in record.pending() if not any(agent.handles(r.address) for agent in self._local)]
        results: list[tuple[RecipientResult, str]] = []
        for group in self._groups(path, remote):
            stored = self._guard.stored(record, path.value, group)
            results.extend((result, path.value) for result in stored or [])
        return results

    def _groups(self, path: DeliveryPath, recipients: list[str]) -> list[list[str]]:
        """The recipients of one remote send each: SES and the smart host take them all at once, direct SMTP one
        transaction per domain."""
        if path is DeliveryPath.SES or (path is DeliveryPath.RELAY and self._relay is not None):
            return [recipients] if recipients else []
        by_domain: dict[str, list[str]] = defaultdict(list)
        for address in recipients:
            by_domain[address.rpartition("@")[2].lower()].append(address)
        return list(by_domain.values())

    def _plan(
        self, path: DeliveryPath, record: MessageRecord, mime: bytes
    ) -> tuple[list[tuple[RecipientResult, str]], list[_Send]]:
        """Each pending recipient goes through the filters, then to a local agent that hosts it; the rest are left
        as remote sends for ``path`` (made afterwards, behind the guard). Returns the results so far, each with the
        name of the agent (or filter) that produced it, and the sends to make."""
        pending = [r.address for r in record.pending()]
        results: list[tuple[RecipientResult, str]] = []
        for recipient_filter in self._filters:
            decided = recipient_filter.screen(record, pending)
            results.extend((result, "filter") for result in decided)
            done = {result.recipient.lower() for result in decided}
            pending = [address for address in pending if address.lower() not in done]
        for agent in self._local:
            mine = [address for address in pending if agent.handles(address)]
            if mine:
                results.extend((result, agent.name) for result in agent.deliver(record, mine, mime))
                pending = [address for address in pending if address not in mine]
        if not pending:
            return results, []
        sender = self._envelope_sender(record)
        if path is DeliveryPath.SES:
            ses = self._ses
            return results, [_Send(path.value, pending, lambda: ses.deliver(record.from_address, pending, mime))]
        if path is DeliveryPath.RELAY and self._relay is not None:
            # One smart host takes every domain: one transaction for all pending recipients.
            relay = self._relay
            return results, [_Send(path.value, pending, lambda: relay.deliver("relay", sender, pending, mime))]
        sends = []
        for recipients in self._groups(path, pending):
            domain = recipients[0].rpartition("@")[2].lower()
            sends.append(
                _Send(
                    path.value,
                    recipients,
                    lambda d=domain, r=recipients: self._smtp.deliver(d, sender, r, mime),  # type: ignore[misc]
                )
            )
        return results, sends

    def _envelope_sender(self, record: MessageRecord) -> str:
        """MAIL FROM for direct SMTP and the relay: the message's VERP bounce address when the stack has a return-path
        domain, so asynchronous bounces reach Postroom; else the sender's own address. (SES is not asked to use it:
        SES sends with its own MAIL FROM and reports bounces through its events.)"""
        if self._return_path is None:
            return record.from_address
        return self._return_path.address_for(record.id)

    def _give_up(
        self,
        record: MessageRecord,
        task: DeliveryTask,
        reason: str,
        now: datetime,
        results: list[tuple[RecipientResult, str]] | None = None,
    ) -> AttemptResult:
        record.give_up(reason, isoformat(now))
        record.updated_at = isoformat(now)
        # Dead-letter first, then save: a crash in between leaves the record unfinished, so the redelivered pointer
        # gives up again (a second DLQ entry at worst). The other order could leave a failed record with no DLQ entry.
        self._queue.dead_letter(task, reason)
        self._store.save(record)
        # Failing is an outcome too: observers (metrics, events) see the failed recipients, and this attempt's
        # results when the give-up follows one.
        for observer in self._observers:
            observer.attempted(record, results or [])
        logger.warning("message failed", extra={"message_id": record.id, "reason": reason})
        return AttemptResult(record.id, record.status)
