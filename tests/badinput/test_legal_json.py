"""Legal JSON that Postroom cannot carry, sent end to end: API-Gateway-style HTTP → the real send API handler → moto.

Each body below is valid RFC 8259 JSON and each used to crash the handler, which API Gateway answers with 502: a lone
surrogate (``"\\ud800"``) in any text, a document nested 100,000 deep, a 5,000-digit integer. Every one must get a
4xx with the structured error body, on every route that takes JSON, and a bad batch row must fail alone. Also here:
a bodiless POST on an action route (``curl -X POST …/cancel``) is served, not refused with 415.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from postroom.local import template as tpl
from tests.badinput.gateway import GATEWAY_ERROR_HEADER, WsgiGateway
from tests.conftest import ROOT, Stack

# Written as JSON text, not built with json.dumps: the point is the exact bytes a client may send.
FROM = '"Shop <orders@shop.example>"'
LONE = '"\\ud800"'


def send(extra: str = "", sender: str = FROM, text: str = '"Hello"', to: str = '"ann@example.org"') -> str:
    return '{"from": ' + sender + ', "to": [' + to + '], "subject": "Hi", "text": ' + text + extra + "}"


SURROGATE_BODIES = {
    "text": (send(text=LONE), "text"),
    "html": (send(', "html": "<p>\\udc00</p>"'), "html"),
    "metadata": (send(', "metadata": {"order": ' + LONE + "}"), "metadata.order"),
    "metadata key": (send(', "metadata": {"\\udfff": "x"}'), "metadata"),
    "headers": (send(', "headers": {"X-Campaign": ' + LONE + "}"), "headers.X-Campaign"),
    "from.name": (send(sender='{"email": "orders@shop.example", "name": ' + LONE + "}"), "from.name"),
    "variables": (
        '{"from": ' + FROM + ', "to": ["ann@example.org"], "template": "order_confirmation", '
        '"variables": {"order": {"items": [{"name": ' + LONE + "}]}}}",
        "variables.order.items[0].name",
    ),
}
DEEP = "[" * 100_000 + "]" * 100_000
LONG_INTEGER = "1" * 5_000


@pytest.fixture
def gateway(stack: Stack) -> WsgiGateway:
    return WsgiGateway(tpl.load_template(ROOT / "template.yaml"), {"SendApiFunction": stack.send_api.invoke})


def http(
    gateway: WsgiGateway,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request through the gateway, as a WSGI server would hand it over."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD=method, PATH_INFO=path, CONTENT_LENGTH=str(len(body)))
    environ["wsgi.input"] = io.BytesIO(body)
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    raw = b"".join(gateway(environ, start_response))
    return answer["status"], answer["headers"], json.loads(raw) if raw else None


def post_json(gateway: WsgiGateway, stack: Stack, path: str, text: str) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
    return http(gateway, "POST", path, text.encode(), headers)


def assert_structured(status: int, headers: dict[str, str], body: Any, expected: int, code: str) -> dict[str, Any]:
    assert GATEWAY_ERROR_HEADER not in headers, body  # the handler answered; it did not crash into a 502
    assert status == expected, body
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str), body
    assert body["error"]["message"], body
    return body["error"]


@pytest.mark.parametrize("case", list(SURROGATE_BODIES))
def test_a_lone_surrogate_in_any_text_is_422_naming_the_field(gateway: WsgiGateway, stack: Stack, case: str) -> None:
    # GIVEN a send body whose <case> holds a lone surrogate  WHEN it is posted
    text, field = SURROGATE_BODIES[case]
    status, headers, body = post_json(gateway, stack, "/v1/messages", text)
    # THEN 422 naming the field, and nothing was queued
    error = assert_structured(status, headers, body, 422, "validation_error")
    assert error["field"] == field, error
    assert "surrogate" in error["message"], error
    assert stack.queue_messages() == []


@pytest.mark.parametrize(
    ("case", "text", "words"),
    [
        ("nested 100,000 deep", DEEP, "nested"),
        ("nested 100,000 deep inside a field", send(', "metadata": ' + DEEP), "nested"),
        ("nested 65 deep", send(', "variables": ' + "[" * 65 + "]" * 65), "nested"),
        ("a 5,000-digit integer", send(', "track_opens": ' + LONG_INTEGER), "digits"),
        ("a 65-digit negative integer", send(', "track_opens": -' + "9" * 65), "digits"),
        ("NaN", send(', "track_opens": NaN'), "NaN"),
        ("a number that overflows to infinity", send(', "track_opens": 1e999'), "large"),
    ],
)
def test_json_beyond_the_parser_limits_is_400_invalid_json(
    gateway: WsgiGateway, stack: Stack, case: str, text: str, words: str
) -> None:
    # GIVEN a body that is legal (or near-legal) JSON beyond Postroom's parser limits  WHEN it is posted
    status, headers, body = post_json(gateway, stack, "/v1/messages", text)
    # THEN 400 invalid_json saying which limit
    error = assert_structured(status, headers, body, 400, "invalid_json")
    assert words in error["message"], error
    assert error["field"] == "body"


def test_a_surrogate_pair_is_text_and_is_accepted(gateway: WsgiGateway, stack: Stack) -> None:
    # GIVEN an emoji written as a JSON surrogate pair (RFC 8259 §7), in the text and in a display name
    sender = '{"email": "orders@shop.example", "name": "Shop \\ud83d\\uded2"}'
    status, _, body = post_json(gateway, stack, "/v1/messages", send(text='"Thanks \\ud83d\\ude00"', sender=sender))
    # THEN it is accepted: only a surrogate without its partner is refused
    assert (status, body["status"]) == (202, "queued"), body


@pytest.mark.parametrize("route", ["/v1/messages/batch", "/v1/messages/raw", "/v1/suppressions", "/v1/webhooks"])
@pytest.mark.parametrize("text", [DEEP, '{"a": ' + LONG_INTEGER + "}"], ids=["deep", "digits"])
def test_every_json_route_uses_the_same_limits(gateway: WsgiGateway, stack: Stack, route: str, text: str) -> None:
    status, headers, body = post_json(gateway, stack, route, text)
    assert_structured(status, headers, body, 400, "invalid_json")


def test_a_bad_row_in_a_batch_fails_alone(gateway: WsgiGateway, stack: Stack) -> None:
    # GIVEN a batch whose second row has a lone surrogate in its text and whose third row is valid
    rows = [send(), send(text=LONE, to='"bob@example.org"'), send()]
    text = '{"messages": [' + ", ".join(rows) + "]}"
    # WHEN it is posted (with an Idempotency-Key, whose fingerprint covers the bad row too)
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json",
               "Idempotency-Key": "batch-1"}  # fmt: skip
    status, answer_headers, body = http(gateway, "POST", "/v1/messages/batch", text.encode(), headers)
    # THEN 200: rows 0 and 2 are queued, row 1 alone is refused with a structured 422 naming its field
    assert GATEWAY_ERROR_HEADER not in answer_headers, body
    assert status == 200, body
    assert (body["accepted"], body["rejected"]) == (2, 1), body
    rows = body["results"]
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert rows[0]["status"] == rows[2]["status"] == "queued"
    assert rows[1]["status"] == 422
    assert rows[1]["error"]["code"] == "validation_error"
    assert rows[1]["error"]["field"] == "text"
    assert len(stack.queue_messages()) == 2


def test_raw_json_refuses_a_lone_surrogate_in_the_envelope(gateway: WsgiGateway, stack: Stack) -> None:
    text = '{"raw": "RnJvbTogYUBzaG9wLmV4YW1wbGUNCg0KSGk=", "recipients": ["ann@example.org", ' + LONE + "]}"
    status, headers, body = post_json(gateway, stack, "/v1/messages/raw", text)
    error = assert_structured(status, headers, body, 422, "validation_error")
    assert error["field"] == "recipients[1]", error


def test_a_bodiless_post_on_an_action_route_is_served(gateway: WsgiGateway, stack: Stack) -> None:
    # GIVEN a scheduled message
    due = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, _, body = post_json(gateway, stack, "/v1/messages", send(', "send_at": "' + due + '"'))
    assert (status, body["status"]) == (202, "scheduled"), body
    # WHEN it is cancelled as the README shows: curl -X POST …/cancel, no body and no Content-Type
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    status, _, record = http(gateway, "POST", f"/v1/messages/{body['id']}/cancel", headers=auth)
    # THEN it is cancelled
    assert (status, record["status"]) == (200, "cancelled"), record


def test_a_bodiless_post_on_a_route_that_needs_a_body_names_the_body(gateway: WsgiGateway, stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    status, headers, body = http(gateway, "POST", "/v1/messages", headers=auth)
    error = assert_structured(status, headers, body, 422, "validation_error")
    assert error["field"] == "body", error
    # and a body still needs its media type
    status, headers, body = http(gateway, "POST", "/v1/messages", send().encode(), headers={**auth, "Content-Type": ""})
    assert_structured(status, headers, body, 415, "unsupported_media_type")
