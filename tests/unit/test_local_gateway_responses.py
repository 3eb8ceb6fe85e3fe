"""The local API gateway writes each response through a buffer (see ``_RequestHandler.wbufsize``): large, small and
bodiless responses still arrive whole, one after another on one kept-alive connection."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from postroom.local.gateway import ApiGateway

BIG = "x" * 300_000  # larger than the write buffer: written in several pieces


def _handler(event: dict[str, Any]) -> dict[str, Any]:
    body = BIG if event["path"] == "/big" else json.dumps({"id": "msg_1", "status": "queued"})
    return {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": body}


@pytest.fixture
def gateway() -> Iterator[ApiGateway]:
    server = ApiGateway(("127.0.0.1", 0), lambda _method, path: (_handler, path, {}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_large_small_and_head_responses_arrive_whole_on_one_connection(gateway: ApiGateway) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.server_address[1], timeout=10)
    for method, path in (("GET", "/big"), ("HEAD", "/small"), ("GET", "/big"), ("POST", "/small")):
        connection.request(method, path, body=b"x" if method == "POST" else None)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 202
        assert not response.will_close
        if method == "HEAD":
            assert body == b""
        elif path == "/big":
            assert body == BIG.encode()
            assert response.getheader("Content-Length") == str(len(BIG))
        else:
            assert json.loads(body) == {"id": "msg_1", "status": "queued"}
    connection.close()
