"""At most one remote send per recipient group and attempt, across SQS redeliveries.

The record's per-recipient final statuses stop resends once they are saved. The gap was a worker that crashed after
SES or the recipient's server accepted a message and before the record was saved: SQS hands the pointer back and the
next attempt sent it again. :class:`OnceGuard` closes that gap with Powertools ``@idempotent_function``: each remote
send is keyed on (message id, path, each recipient with its attempt count) and its results are stored in the
idempotency table the moment the send returns. A redelivery after such a crash finds the stored results, records them
instead of sending, and the recipients end up delivered exactly once.

The attempt counts are the recipients' own (``RecipientState.attempts``), which only grow when a result is saved: a
crashed attempt leaves them unchanged (same key, results replayed), while a deferred recipient's retry has a higher
count (new key, sent again).

Replaying needs the worker to reach the guard again, and a redelivered attempt may not: by then the crashed attempts
may have used up the attempt budget, the pointer may have reached the crash-loop threshold, or a filter (the pacer,
the suppression list) may decide the recipient differently. So before anything else, an attempt that finds the record
left ``sending`` asks :meth:`OnceGuard.stored` for the results the crashed attempt stored, without sending, and
completes the record from them (see ``Deliverer.attempt``). A recipient the remote accepted is then recorded
delivered, never failed, suppressed or deferred in its place.

What remains is the crash *inside* the send, between the remote's "250 OK" and the write of the results - the window
of one DynamoDB write. The in-progress record then expires with the invocation (``register_lambda_context``) and the
next attempt sends again: at least once, as SMTP itself is. A write of the results that *fails* (the table throttles
or errs, the worker lives on) is no crash: the guard hands the results it has to the worker, which records them in
the message record, and that record stops any resend.

A batch claims its sends together (:meth:`OnceGuard.claim_many`: one TransactWriteItems of in-progress records, issue
21), so each send then costs only the write of its results, right after the remote's answer as before. If the batch
claim fails (a key is already there: a replay, another worker), every send goes through ``Once.run`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.bounce_types import BounceType
from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.core.idempotency import IdempotencyAlreadyInProgressError, IdempotencyPersistenceLayerError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from postroom.core.idempotency import Once
    from postroom.core.message_record import MessageRecord
    from postroom.wiring.services import Services

logger = Logger(child=True)


class SendInProgressError(RuntimeError):
    """Another worker is sending to these recipients right now (SQS delivered the pointer twice): this one backs
    off, and the pointer comes back after its visibility timeout, when the other worker's results are saved."""


def _to_json(results: list[RecipientResult]) -> list[dict[str, Any]]:
    return [{**asdict(result), "outcome": result.outcome.value} for result in results]


def _from_json(data: list[dict[str, Any]]) -> list[RecipientResult]:
    # JSON keeps the enums' values: turn them back into the enums, as the agents hand them over.
    return [
        RecipientResult(
            **{
                **item,
                "outcome": Outcome(item["outcome"]),
                "bounce_type": BounceType(item["bounce_type"]) if item.get("bounce_type") is not None else None,
            }
        )
        for item in data
    ]


class OnceGuard:
    def __init__(self, once: Once, context: LambdaContext | None = None) -> None:
        self._once = once
        self._context = context
        self._claimed: set[str] = set()  # keys claim_many marked in progress, each waiting for its send

    def claim_many(self, sends: list[tuple[MessageRecord, str, list[str]]]) -> None:
        """Claim a batch's sends (record, path, recipients) in one write; those claimed skip ``Once.run``'s own."""
        keys = [_key(record, path, recipients) for record, path, recipients in sends]
        if len(keys) > 1 and self._once.claim_many(keys, context=self._context):
            self._claimed.update(keys)

    def _claimed_send(
        self, key: str, record: MessageRecord, send: Callable[[], list[RecipientResult]]
    ) -> list[RecipientResult]:
        self._claimed.discard(key)
        try:
            results = send()
        except Exception:
            self._once.release(key)  # as Once.run does: the send did not happen, a retry may send
            raise
        try:
            self._once.complete(key, _to_json(results))
        except IdempotencyPersistenceLayerError:
            logger.warning(
                "send guard could not store the results of a completed send; recording them anyway",
                extra={"message_id": record.id, "recipients": len(results)},
                exc_info=True,
            )
        return results

    def __call__(
        self, record: MessageRecord, path: str, recipients: list[str], send: Callable[[], list[RecipientResult]]
    ) -> list[RecipientResult]:
        key = _key(record, path, recipients)
        if key in self._claimed:
            return self._claimed_send(key, record, send)
        sent: list[list[RecipientResult]] = []

        def work() -> list[dict[str, Any]]:
            results = send()
            sent.append(results)
            return _to_json(results)

        try:
            stored, _ = self._once.run(key, work, context=self._context)
        except IdempotencyAlreadyInProgressError:
            raise SendInProgressError(
                f"{record.id}: another worker is sending to {len(recipients)} recipient(s)"
            ) from None
        except IdempotencyPersistenceLayerError:
            if not sent:
                raise
            # The send happened and only storing its results failed: the worker records them in the message record,
            # which then stops any resend. Raising instead would drop the remote's answer and leave the record
            # "sending" behind a claim that stays in progress until the invocation's time is up, then sends again.
            logger.warning(
                "send guard could not store the results of a completed send; recording them anyway",
                extra={"message_id": record.id, "recipients": len(recipients)},
                exc_info=True,
            )
            return sent[0]
        return _from_json(stored)

    def stored(self, record: MessageRecord, path: str, recipients: list[str]) -> list[RecipientResult] | None:
        """What a send of this recipient group in this attempt returned, if one completed; never sends."""
        found = self._once.stored(_key(record, path, recipients))
        return _from_json(found) if found is not None else None


def _key(record: MessageRecord, path: str, recipients: list[str]) -> str:
    attempts = {r.address.lower(): r.attempts for r in record.recipients}
    group = ",".join(sorted(f"{address.lower()}#{attempts.get(address.lower(), 0)}" for address in recipients))
    return f"{record.id}|{path}|{group}"


def send_guard(svc: Services, context: LambdaContext | None) -> OnceGuard | None:
    """The worker's guard, when the stack has an idempotency table (None: send directly, as before)."""
    once = svc.once("worker-send")
    return OnceGuard(once, context) if once is not None else None
