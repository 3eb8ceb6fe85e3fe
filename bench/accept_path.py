"""Accept path: CPU time per valid send request through the real send API handler, with the AWS calls answered by
minimal client doubles, against a Powertools hello-world resolver (target: ≤ 3×).

* **Postroom**: ``functions/send_api/app.py``'s ``lambda_handler`` (Logger, Tracer and Metrics decorators, the gate,
  the API key lookup, Powertools' request validation into ``SendRequest``, ``postroom.accept.intake.accept``) on an API
  Gateway proxy event for ``POST /v1/messages`` with a typical transactional message (one recipient, subject, a
  1.5 KB text and a 3 KB HTML body). DynamoDB ``GetItem``/``PutItem``, S3 ``PutObject`` and SQS ``SendMessage``
  go to in-memory doubles that answer at once, so the figure is Postroom's own CPU, not the network or botocore.
* **Reference**: a Powertools ``APIGatewayRestResolver`` with one ``POST /v1/messages`` route that returns
  ``{"message": "hello"}``, behind the same three decorators, on the same event.

CPU time is ``time.process_time()`` over blocks of requests, blocks interleaved (A B B A …); medians of the
per-request figures. Tracing and metrics are disabled and the log level is WARNING for both (nothing is printed per
request), as the suite does.

    .venv/bin/python bench/accept_path.py [--blocks 20] [--per-block 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
import types
from typing import Any

from _common import ROOT, Paired, interleave, machine, print_paired, save

ENV = {
    "POSTROOM_TABLE": "postroom-table",
    "POSTROOM_BUCKET": "postroom-bodies",
    "POSTROOM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/delivery",
    "POSTROOM_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/delivery-dlq",
    "POSTROOM_SENDING_DOMAINS": "shop.example",
    "POWERTOOLS_SERVICE_NAME": "postroom",
    "POWERTOOLS_METRICS_NAMESPACE": "Postroom",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MESSAGE = {
    "from": "Shop <orders@shop.example>",
    "to": ["Ann Example <ann@example.org>"],
    "subject": "Your order #1001 has shipped",
    "text": "Hello Ann,\n\nyour order #1001 is on its way. " * 30,
    "html": "<p>Hello Ann,</p><p>your order <b>#1001</b> is on its way.</p>" * 50,
    "tags": ["order-shipped"],
    "metadata": {"order": "1001"},
}
HELLO = """
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()


@app.post("/v1/messages")
def hello():
    return {"message": "hello"}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
"""


class _Dynamo:
    def __init__(self, key_item: dict[str, Any]) -> None:
        self._key_item = key_item

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": self._key_item}

    def put_item(self, **_: Any) -> dict[str, Any]:
        return {}


class _S3:
    def put_object(self, **_: Any) -> dict[str, Any]:
        return {"ETag": '"0"'}


class _Sqs:
    def send_message(self, **_: Any) -> dict[str, Any]:
        return {"MessageId": "00000000-0000-0000-0000-000000000000"}


def load_handler(name: str, path: str | None, source: str | None = None) -> Any:
    if source is not None:
        module = types.ModuleType(name)
        exec(compile(source, name, "exec"), module.__dict__)
        return module.lambda_handler
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def prepare(per_block: int) -> tuple[Any, Any, list[dict[str, Any]], Any, int]:
    """(Postroom's handler, the hello-world handler, events, a Lambda context, the body size)."""
    os.environ.update(ENV)

    from postroom.accept.delivery_queue import DeliveryQueue
    from postroom.core.auth import ALL_SCOPES, hash_key
    from postroom.core.dynamo import to_item
    from postroom.core.key_store import ApiKeyStore
    from postroom.core.message_store import MessageStore
    from postroom.core.settings import settings_from_env
    from postroom.local.gateway import build_event
    from postroom.local.handlers import LocalLambdaContext
    from postroom.wiring import services as services_module
    from postroom.wiring.services import Services

    key = "pr_" + "k" * 43
    key_item = to_item(
        {"pk": f"KEY#{hash_key(key)}", "sk": "KEY", "key_id": hash_key(key)[:12], "name": "bench",
         "scopes": sorted(ALL_SCOPES), "tenant": "default", "created_at": "2026-01-01T00:00:00Z", "disabled": False,
         # A key as the keys API writes it: listed (gsi1), so authenticate() has nothing to back-fill per request.
         "gsi1pk": "KEYS#default", "gsi1sk": hash_key(key)[:12]}
    )  # fmt: skip
    settings = settings_from_env()
    svc = Services(settings)
    dynamo = _Dynamo(key_item)
    svc.__dict__["messages"] = MessageStore(dynamodb=dynamo, s3=_S3(), table=settings.table, bucket=settings.bucket)
    svc.__dict__["keys"] = ApiKeyStore(dynamo, settings.table)
    svc.__dict__["queue"] = DeliveryQueue(_Sqs(), settings.queue_url, settings.dlq_url)
    services_module._services = svc

    postroom = load_handler("send_api_app", str(ROOT / "functions" / "send_api" / "app.py"))
    hello = load_handler("hello_app", None, HELLO)
    body = json.dumps(MESSAGE).encode()
    headers = [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"), ("User-Agent", "bench")]

    def event() -> dict[str, Any]:
        return build_event(
            method="POST", path="/v1/messages", resource="/v1/messages", query="", headers=headers, body=body,
            source_ip="127.0.0.1", path_parameters={}, stage="api",
        )  # fmt: skip

    events = [event() for _ in range(per_block)]
    context = LocalLambdaContext("SendApiFunction")
    first = postroom(event(), context)
    assert first["statusCode"] == 202, first
    assert hello(event(), context)["statusCode"] == 200
    return postroom, hello, events, context, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=200)
    args = parser.parse_args()
    postroom, hello, events, context, body_size = prepare(args.per_block)

    def block(handler: Any, expected: int) -> float:
        start = time.process_time()
        for item in events:
            result = handler(item, context)
        elapsed = time.process_time() - start
        assert result["statusCode"] == expected, result
        return elapsed / len(events) * 1e6

    for _ in range(3):  # warm both
        block(postroom, 202)
        block(hello, 200)
    paired = Paired("CPU per request, POST /v1/messages", "µs")
    for a, b in interleave(args.blocks, lambda: block(postroom, 202), lambda: block(hello, 200)):
        paired.add(a, b)
    print(f"accept path, {machine()}")
    print(f"{args.blocks} blocks of {args.per_block} requests each side, request body {body_size} bytes")
    print_paired(paired, target=3.0)
    print(f"saved {save('accept_path', {'cpu_per_request': paired.summary()})}")


if __name__ == "__main__":
    main()
