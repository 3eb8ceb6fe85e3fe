"""The commerce functions against moto: a store with a real secret, webhooks signed with real HMACs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.commerce.signatures import sign
from postroom.commerce.stores import Platform, Store
from postroom.local import template as tpl
from postroom.local.gateway import build_event
from postroom.local.handlers import LocalFunction
from postroom.local.poller import build_sqs_event
from postroom.wiring.commerce_services import commerce_services
from tests.conftest import ROOT, Stack, load_function, start_stack

FIXTURES = ROOT / "tests" / "fixtures"
SECRET = "shpss_0123456789abcdef0123456789abcdef"


def fixture(platform: str, name: str) -> bytes:
    return (FIXTURES / platform / f"{name}.json").read_bytes()


@dataclass
class Shop:
    stack: Stack
    hooks: LocalFunction
    worker: LocalFunction

    def post(
        self, platform: str, store: str, body: bytes, headers: dict[str, str], *, secret: str | None = SECRET
    ) -> tuple[int, dict[str, Any]]:
        header = "X-Shopify-Hmac-Sha256" if platform == "shopify" else "X-WC-Webhook-Signature"
        all_headers = {"Content-Type": "application/json", **headers}
        if secret is not None:
            all_headers[header] = sign(body, secret)
        event = build_event(
            method="POST",
            path=f"/v1/hooks/{platform}/{store}",
            resource=f"/v1/hooks/{platform}/{{store}}",
            query="",
            headers=list(all_headers.items()),
            body=body,
            source_ip="127.0.0.1",
            path_parameters={"store": store},
            stage="api",
        )
        result = self.hooks.invoke(event)
        return result["statusCode"], json.loads(result["body"])

    def shopify(self, topic: str, body: bytes, webhook_id: str, store: str = "demo-shopify") -> tuple[int, dict]:
        return self.post("shopify", store, body, {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id})

    def woo(self, topic: str, body: bytes, delivery_id: str, store: str = "demo-woo") -> tuple[int, dict]:
        return self.post(
            "woocommerce", store, body, {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Delivery-ID": delivery_id}
        )

    def process(self) -> list[Any]:
        """Run the commerce worker over everything queued for it; returns each webhook's outcome lines."""
        sqs = boto3.client("sqs")
        url = self.stack.resources["CommerceQueue"]["Ref"]
        outcomes = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            event = build_sqs_event(messages, self.stack.resources["CommerceQueue"]["Arn"], "us-east-1")
            assert self.worker.invoke(event) == {"batchItemFailures": []}
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            outcomes += messages
        return outcomes

    def mails(self) -> list[dict[str, Any]]:
        """Every message accepted so far (queued or scheduled), with its stored request."""
        ddb = boto3.client("dynamodb")
        s3 = boto3.client("s3")
        table = self.stack.resources["Table"]["Ref"]
        items = ddb.scan(TableName=table, FilterExpression="sk = :m", ExpressionAttributeValues={":m": {"S": "MSG"}})
        found = []
        for item in items["Items"]:
            record = json.loads(item["doc"]["S"])
            prefix = "scheduled" if record.get("send_at") else "messages"
            obj = s3.get_object(
                Bucket=self.stack.resources["BodiesBucket"]["Ref"], Key=f"{prefix}/{record['id']}/request.json"
            )
            found.append({**record, "request": json.loads(obj["Body"].read())})
        return sorted(found, key=lambda r: r["created_at"])


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    with mock_aws():
        stack = start_stack(monkeypatch)
        template = tpl.load_template(ROOT / "template.yaml")
        for name, value in tpl.function_environment(template, "CommerceHooksFunction", stack.resources, {}).items():
            if name != "POSTROOM_SENDING_DOMAINS":
                monkeypatch.setenv(name, value)
        stores = commerce_services().stores
        stores.put(
            Store("demo-shopify", Platform.SHOPIFY, "Demo Shop <orders@shop.example>", "Demo Shop",
                  support_email="help@shop.example"),
            SECRET,
        )  # fmt: skip
        stores.put(Store("demo-woo", Platform.WOOCOMMERCE, "Woo Shop <orders@shop.example>", "Woo Shop"), SECRET)
        yield Shop(
            stack, load_function(template, "CommerceHooksFunction"), load_function(template, "CommerceWorkerFunction")
        )


__all__ = ["FIXTURES", "Path", "Shop", "fixture"]
