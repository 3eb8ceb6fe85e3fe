"""Capturing what operators would see: EMF documents printed by Powertools, and the service logger's JSON lines."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Metrics

from postroom.local.poller import build_sqs_event
from postroom.observability.correlation import service_logger
from tests.conftest import Stack


@pytest.fixture
def emf(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[[], list[dict[str, Any]]]:
    """Turn metrics on (the suite turns them off) and return a reader for the EMF documents printed so far."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # Powertools keeps metrics in class-level state shared by every Metrics(); with metrics off, other tests' values
    # were never flushed, so start from an empty set.
    Metrics().clear_metrics()

    def read() -> list[dict[str, Any]]:
        lines = capsys.readouterr().out.splitlines()
        documents = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
        return [d for d in documents if "CloudWatchMetrics" in d["_aws"]]

    return read


@pytest.fixture
def service_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the service logger writes (the ones CloudWatch Logs would hold), at INFO level."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "postroom")
    logger = service_logger()
    handler = logger.registered_handler
    stream = io.StringIO()
    previous_stream = handler.setStream(stream)  # type: ignore[attr-defined]
    previous_level = logger.log_level
    logger.setLevel("INFO")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    logger.setLevel(previous_level)
    handler.setStream(previous_stream)  # type: ignore[attr-defined]


def run_worker(stack: Stack) -> dict[str, Any]:
    """Receive what is on the delivery queue and hand it to the real worker handler, as Lambda's poller would."""
    sqs = boto3.client("sqs")
    queue = stack.resources["DeliveryQueue"]
    messages = sqs.receive_message(
        QueueUrl=queue["Ref"], MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", [])
    assert messages, "nothing was queued"
    return stack.worker.invoke(build_sqs_event(messages, queue["Arn"], "us-east-1"))
