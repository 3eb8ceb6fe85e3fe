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
"""

from __future__ import annotations

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
