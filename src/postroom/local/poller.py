"""What Lambda's SQS event source mapping does, on loopback: long-poll the queue, hand batches to the *same*
worker handler as Lambda-shaped SQS events, delete what succeeded, and leave reported failures (and whole batches
whose handler raised) to come back after their visibility timeout."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("postroom.local")


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value.get("DataType", "String"),
        }
        for name, value in attributes.items()
    }


def build_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": _lambda_message_attributes(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsPoller(threading.Thread):
    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int = 10,
        report_batch_item_failures: bool = True,
        region: str = "us-east-1",
        wait_seconds: int = 1,
    ) -> None:
        super().__init__(name=f"sqs-poller:{queue_arn.rsplit(':', 1)[-1]}", daemon=True)
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._invoke = invoke
        self._batch_size = max(1, min(batch_size, 10))  # ReceiveMessage returns at most 10 per call
        self._partial = report_batch_item_failures
        self._region = region
        self._wait = wait_seconds
        self._stopping = threading.Event()
        self.batches = 0  # how many batches were handed to the function (for tests and the status line)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # the emulator went away at shutdown, or a transient error: keep polling
                if self._stopping.is_set():
                    return
                log.exception("SQS poll failed; retrying")
                self._stopping.wait(0.5)

    def poll_once(self) -> int:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        self.batches += 1
        try:
            result = self._invoke(build_sqs_event(messages, self._queue_arn, self._region))
        except Exception:
            # As on Lambda: a failed invocation deletes nothing; the whole batch returns after the visibility timeout.
            log.exception("worker invocation failed; %d messages return after their visibility timeout", len(messages))
            return len(messages)
        failed: set[str] = set()
        if self._partial and isinstance(result, dict):
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures") or []}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
