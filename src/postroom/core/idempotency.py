"""Do-it-once, on Powertools Idempotency with the stack's idempotency table.

Each :class:`Once` is one Powertools ``@idempotent_function`` with its own persistence layer (a shared layer would
keep the first function's key prefix) and its own key prefix, so keys of different uses never meet:

    ``send``            ``Idempotency-Key`` on POST /v1/messages, per tenant; the body must match (else 409)
    ``batch``           the same for POST /v1/messages/batch
    ``raw``             the same for POST /v1/messages/raw (checked against the message's digest and its envelope)
    ``worker-send``     one recipient group of one delivery attempt: a redelivered SQS message replays the result
    ``hook-delivery``   a platform's webhook delivery id: a redelivered webhook is answered as a duplicate
    ``commerce-mail``   (store, mail kind, order id): a shop's order mail is sent once however its hooks arrive

The work runs once per key while the key lives; a later call with the key returns the first call's result. When the
work raises, Powertools deletes its in-progress record, so a retry may run it again. :meth:`Once.stored` reads a key's
result without running anything (the worker completes a crashed attempt's record from it).

:meth:`Once.claim_many` and :meth:`Once.complete` split ``run`` in two for a batch (issue 21): the in-progress records
of many keys are written in one TransactWriteItems (Powertools' own item shape and condition, so ``run``, ``stored``
and an expired claim behave exactly as if Powertools had written them), then each key's result is written the moment
its work returns. A batch of 10 sends then costs 1 + 10 writes instead of 2 × 10.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS

from postroom.core.errors import ConflictError, ServiceUnavailableError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "IdempotencyAlreadyInProgressError",
    "IdempotencyKeyReusedError",
    "IdempotencyPersistenceLayerError",
    "Once",
    "api_errors",
]

DAY = 24 * 3600
COMPLETED = STATUS_CONSTANTS["COMPLETED"]
_REPLAYED = "__postroom_replayed__"


class IdempotencyKeyReusedError(ConflictError):
    code = "idempotency_key_reused"


class IdempotencyInProgressError(ConflictError):
    code = "idempotency_in_progress"


def _call(data: dict[str, Any], work: Callable[[], Any]) -> Any:
    return work()


# The parameter names follow Powertools' IdempotentHookFunction protocol, which mypy matches by name.
def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {_REPLAYED: True, "response": response}


class Once:
    def __init__(self, *, table: str, dynamodb: Any, scope: str, expires_after_seconds: int, validate: bool) -> None:
        self.scope = scope
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="payload" if validate else "",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            response_hook=_mark_replay,
        )
        self._dynamodb = dynamodb
        self._layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=dynamodb)
        # Configured here, not only on the first run(), so that stored() hashes keys as run() does from a cold start.
        self._layer.configure(config=self._config, key_prefix=scope)
        self._run = idempotent_function(
            _call, data_keyword_argument="data", persistence_store=self._layer, config=self._config, key_prefix=scope
        )

    def run(
        self, key: str, work: Callable[[], Any], *, payload: Any = None, context: LambdaContext | None = None
    ) -> tuple[Any, bool]:
        """Run ``work`` once for ``key``; returns its (JSON-serialisable) result and whether it was replayed.

        ``context`` bounds the in-progress record by the invocation's remaining time, so a crashed invocation does
        not block the key beyond its own timeout.
        """
        if context is not None:
            self._config.register_lambda_context(context)
        result = self._run(data={"key": key, "payload": payload}, work=work)
        if isinstance(result, dict) and result.get(_REPLAYED):
            return result["response"], True
        return result, False

    def claim_many(self, keys: list[str], *, context: LambdaContext | None = None) -> bool:
        """Mark every key in progress in one write, as ``run`` would before its work; False (nothing written) when
        any key exists (done, in progress) or the write fails: the caller then runs each key through ``run``.

        Uses Powertools' persistence layer's key hashing and item attributes (its private helpers, pinned by
        ``tests/delivery/test_send_once.py``), so the claims are indistinguishable from its own."""
        if not keys:
            return True
        if context is not None:
            self._config.register_lambda_context(context)
        layer = self._layer
        now = dt.datetime.now()
        lambda_context = self._config.lambda_context
        in_progress_expiry = (
            int((now + dt.timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())).timestamp() * 1000)
            if lambda_context is not None
            else None
        )
        puts = []
        for key in keys:
            hashed = layer._get_hashed_idempotency_key(data={"key": key, "payload": None})
            if hashed is None:  # cannot happen: raise_on_no_idempotency_key, and the key path is always set
                return False
            item = {
                **layer._get_key(hashed),
                layer.expiry_attr: {"N": str(layer._get_expiry_timestamp())},
                layer.status_attr: {"S": STATUS_CONSTANTS["INPROGRESS"]},
            }
            if in_progress_expiry is not None:
                item[layer.in_progress_expiry_attr] = {"N": str(in_progress_expiry)}
            # Powertools' own condition: the key is new, expired, or an in-progress claim whose invocation is over.
            puts.append(
                {
                    "Put": {
                        "TableName": layer.table_name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(#id) OR #expiry < :now OR "
                        "(#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)",
                        "ExpressionAttributeNames": {
                            "#id": layer.key_attr,
                            "#expiry": layer.expiry_attr,
                            "#ipe": layer.in_progress_expiry_attr,
                            "#status": layer.status_attr,
                        },
                        "ExpressionAttributeValues": {
                            ":now": {"N": str(int(now.timestamp()))},
                            ":now_ms": {"N": str(int(now.timestamp() * 1000))},
                            ":inprogress": {"S": STATUS_CONSTANTS["INPROGRESS"]},
                        },
                    }
                }
            )
        try:
            self._dynamodb.transact_write_items(TransactItems=puts)
        except Exception:  # noqa: BLE001 - a key already there, a conflict or an outage: run() decides each key
            return False
        return True

    def complete(self, key: str, result: Any) -> None:
        """Store the result of a key claimed by :meth:`claim_many` (``run``'s second write)."""
        try:
            self._layer.save_success(data={"key": key, "payload": None}, result=result)
        except Exception as exc:
            raise IdempotencyPersistenceLayerError("Failed to update success record to idempotency store", exc) from exc

    def release(self, key: str) -> None:
        """Drop the claim of a key whose work raised, as ``run`` does, so a retry may run it again."""
        self._layer.delete_record(data={"key": key, "payload": None}, exception=RuntimeError("work failed"))

    def stored(self, key: str) -> Any:
        """The result :meth:`run` stored for ``key``, without running anything; None when there is none: never run,
        still in progress (or orphaned by a crash), failed, or expired."""
        try:
            record = self._layer.get_record(data={"key": key, "payload": None})
        except IdempotencyItemNotFoundError:
            return None
        if record is None or record.status != COMPLETED:
            return None
        return record.response_json_as_dict()


def api_errors(exc: Exception) -> Exception:
    """The API's answer to a Powertools idempotency error (other exceptions pass through unchanged)."""
    if isinstance(exc, IdempotencyValidationError):
        return IdempotencyKeyReusedError(
            "this Idempotency-Key was already used with a different request body; use a new key for a new request",
            field="Idempotency-Key",
        )
    if isinstance(exc, IdempotencyAlreadyInProgressError):
        return IdempotencyInProgressError(
            "a request with this Idempotency-Key is still being processed; retry in a few seconds",
            field="Idempotency-Key",
        )
    if isinstance(exc, IdempotencyPersistenceLayerError):
        return ServiceUnavailableError("the idempotency store is unavailable; nothing was accepted")
    return exc
