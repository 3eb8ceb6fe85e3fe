"""The API-key lookup is cached briefly per execution environment (issue 21: accept ≤ 3 AWS calls), without loosening
disable and rotation: through the real send API handler against moto, AWS calls counted with botocore's hooks."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from postroom.core import aws, key_store
from postroom.core.auth import ALL_SCOPES, hash_key
from postroom.core.key_store import ApiKeyStore
from postroom.wiring.services import services
from tests.conftest import Stack, create_key

MESSAGE = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "Hi", "text": "Hello"}


def _count_key_reads() -> list[str]:
    reads: list[str] = []

    def on_get_item(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["pk"]["S"].startswith("KEY#"):
            reads.append(params["Key"]["pk"]["S"])

    aws.client("dynamodb").meta.events.register("before-call.dynamodb.GetItem", on_get_item)
    return reads


def test_a_busy_key_is_read_once_per_cache_window(stack: Stack) -> None:
    # GIVEN a key that has sent once
    assert stack.request("POST", "/v1/messages", MESSAGE)[0] == 202
    reads = _count_key_reads()
    # WHEN it sends five more times within the window
    for _ in range(5):
        assert stack.request("POST", "/v1/messages", MESSAGE)[0] == 202
    # THEN its item was not read again
    assert reads == []


def test_a_key_disabled_through_the_api_stops_at_once(stack: Stack) -> None:
    secret = create_key()
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 202  # now cached
    status, body = stack.request("POST", f"/v1/keys/{hash_key(secret)[:12]}/disable")
    assert status in (200, 204), body
    status, body = stack.request("POST", "/v1/messages", MESSAGE, key=secret)
    assert status == 401, body
    assert body["error"]["code"], body


def test_a_key_disabled_elsewhere_stops_when_the_window_ends(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a cached key, disabled by another execution environment (its own store over the same table)
    secret = create_key()
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 202
    elsewhere = ApiKeyStore(boto3.client("dynamodb"), services().settings.table)
    assert elsewhere.disable(hash_key(secret)[:12]) == 1
    # WHEN the cache window has passed
    later = time.monotonic() + key_store.KEY_CACHE_SECONDS + 1
    monkeypatch.setattr(key_store.time, "monotonic", lambda: later)
    # THEN the key is refused
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 401


def test_an_unknown_key_is_not_cached(stack: Stack) -> None:
    # GIVEN a key refused because it did not exist yet  WHEN it is created  THEN it works at once
    secret = "pr_" + "a" * 40
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 401
    services().keys.create(name="late", scopes=ALL_SCOPES, key=secret)
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 202
