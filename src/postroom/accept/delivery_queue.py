"""The delivery queue: SQS carries a pointer (the message id), so SQS's size cap never limits message size and a
retry always reads the current record. A small request (up to :data:`INLINE_REQUEST_MAX` bytes of JSON) also rides
along in the body, so the worker's first attempt builds the MIME without reading ``request.json`` back from S3 (issue
21: one S3 GetObject per message). S3 still holds the request: the body is a copy, never the only one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from postroom.observability.correlation import current_correlation_id, message_attributes

QUEUE_BODY_VERSION = 1
# SQS bills a request per 64 KB chunk of payload: a body under that, with room for the pointer and the attributes,
# stays one request.
INLINE_REQUEST_MAX = 48 * 1024


@dataclass(frozen=True, slots=True)
class DeliveryTask:
    message_id: str
    # Set by a schedule's firing: the send_at it was created for. A firing whose send_at no longer matches the record
    # (the message was rescheduled meanwhile) is stale and is dropped by the worker.
    send_at: str | None = None
    # The validated request's JSON (as stored in S3's request.json) when it is small; None: read it from S3.
    request: str | None = None

    @classmethod
    def carrying(cls, message_id: str, request_json: bytes) -> DeliveryTask:
        """The pointer for a just-accepted message, with its request inline when small enough."""
        inline = request_json.decode() if len(request_json) <= INLINE_REQUEST_MAX else None
        return cls(message_id=message_id, request=inline)

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"v": QUEUE_BODY_VERSION, "id": self.message_id}
        if self.send_at is not None:
            body["send_at"] = self.send_at
        if self.request is not None:
            body["request"] = self.request
        return body

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, body: str) -> DeliveryTask:
        data = json.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("queue body is not a Postroom delivery task")
        send_at = data.get("send_at")
        request = data.get("request")
        return cls(
            message_id=data["id"],
            send_at=send_at if isinstance(send_at, str) else None,
            request=request if isinstance(request, str) else None,
        )


class DeliveryQueue:
    def __init__(self, sqs: Any, queue_url: str, dlq_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._dlq_url = dlq_url

    def enqueue(self, task: DeliveryTask, *, delay_seconds: int = 0, correlation_id: str | None = None) -> None:
        """``correlation_id`` None: the one the current invocation logs with (the API request id), so the worker's
        log lines for this message carry it too."""
        attributes = message_attributes(correlation_id or current_correlation_id())
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=task.to_json(),
            DelaySeconds=delay_seconds,
            **({"MessageAttributes": attributes} if attributes else {}),
        )

    def enqueue_batch(self, tasks: list[DeliveryTask]) -> set[str]:
        """Up to 10 tasks in one SendMessageBatch call; returns the ids of the messages SQS did not take."""
        if not tasks:
            return set()
        response = self._sqs.send_message_batch(
            QueueUrl=self._queue_url,
            Entries=[{"Id": str(i), "MessageBody": task.to_json()} for i, task in enumerate(tasks)],
        )
        return {tasks[int(failed["Id"])].message_id for failed in response.get("Failed", [])}

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Keep the message invisible for ``seconds`` (≤ 12 h): SQS then hands it to a worker again."""
        self._sqs.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43200))
        )

    def dead_letter(self, task: DeliveryTask | str, reason: str) -> None:
        """Park a message the worker gave up on (or a queue body it cannot read), with the reason, where operators
        and the DLQ alarm see it.

        The reason is a message attribute (consoles list it), and for a task also a field of the body, so it travels
        with the body through tools that keep only bodies; the body stays a readable task, so a redrive to the
        delivery queue still works. An unreadable body is parked exactly as it came.
        """
        # A task is parked as its pointer (no inline request: S3 has it, and a redrive reads it from there).
        pointer = DeliveryTask(task.message_id, task.send_at) if isinstance(task, DeliveryTask) else None
        body = json.dumps({**pointer.to_dict(), "reason": reason[:1000]}) if pointer is not None else task
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
        )
