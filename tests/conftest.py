"""Shared fixtures: an emulated AWS account (moto, in-process) holding the resources template.yaml declares, and
the real handlers loaded from functions/."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.core.auth import ALL_SCOPES, Scope
from postroom.local import template as tpl
from postroom.local.gateway import build_event
from postroom.local.handlers import LocalFunction
from postroom.testing import moto_transactions
from postroom.wiring.services import reset_services, services
from postroom.wiring.worker_batch import reset_resolver

ROOT = Path(__file__).resolve().parents[1]
moto_transactions.install()  # the worker saves a batch in one transaction; moto's backup of it was quadratic
SENDING_DOMAINS = "shop.example,smtp.example=smtp"


@pytest.fixture(autouse=True)
def _clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may reach a real AWS account: dummy credentials, a fixed region, no stray endpoint."""
    clean_aws_env(monkeypatch)
    reset_services()
    reset_resolver()
    yield
    reset_services()
    reset_resolver()


def clean_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment every test starts from; module-scoped stacks apply it once for the whole module."""
    for name in list(os.environ):
        if name.startswith(("POSTROOM_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    # As template.yaml's Globals set it: Powertools flushes on its own every 100 metrics and needs the namespace then.
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Postroom")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")


@dataclass
class Stack:
    """An emulated deployment: template resources in moto, settings in the environment, the real handlers."""

    resources: dict[str, dict[str, Any]]
    api_key: str
    send_api: LocalFunction
    worker: LocalFunction

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, Any]]:
        hdrs = {"Content-Type": "application/json"}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {self.api_key if key == 'default' else key}"
        hdrs.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        route_path = "/v1/messages/{id}" if path.count("/") > 2 else "/v1/messages"
        event = build_event(
            method=method,
            path=path,
            resource=route_path,
            query=query,
            headers=list(hdrs.items()),
            body=payload,
            source_ip="127.0.0.1",
            path_parameters={},
            stage="api",
        )
        result = self.send_api.invoke(event)
        return result["statusCode"], json.loads(result["body"]) if result.get("body") else {}

    def queue_messages(self, logical_id: str = "DeliveryQueue") -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        url = self.resources[logical_id]["Ref"]
        return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])


@functools.cache
def _session() -> boto3.session.Session:
    # One session for every test: it caches the service models, so creating clients costs milliseconds, not ~0.1 s
    # each. moto's mock patches every session's clients, whenever they were made.
    return boto3.session.Session(region_name="us-east-1")


def load_function(template: dict[str, Any], logical_id: str) -> LocalFunction:
    props = template["Resources"][logical_id]["Properties"]
    module, _, handler = props["Handler"].rpartition(".")
    return LocalFunction(logical_id, ROOT / props["CodeUri"] / f"{module}.py", handler, timeout=30, memory=512)


def start_stack(monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str] | None = None) -> Stack:
    template = tpl.load_template(ROOT / "template.yaml")
    params = {**tpl.parameter_defaults(template), "SendingDomains": SENDING_DOMAINS, **(parameters or {})}
    session = _session()
    resources = tpl.create_resources(template, session, parameters=params, prefix="test")
    for name, value in tpl.function_environment(template, "SendApiFunction", resources, params).items():
        monkeypatch.setenv(name, value)
    for name, value in tpl.function_environment(template, "WorkerFunction", resources, params).items():
        monkeypatch.setenv(name, value)
    for name, value in tpl.function_environment(template, "CommerceWorkerFunction", resources, params).items():
        monkeypatch.setenv(name, value)
    reset_services()
    ses = session.client("ses")
    for domain in ("shop.example", "smtp.example"):
        ses.verify_domain_identity(Domain=domain)
    key = services().keys.create(name="test", scopes=ALL_SCOPES, tenant="default")
    return Stack(resources, key, load_function(template, "SendApiFunction"), load_function(template, "WorkerFunction"))


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    with mock_aws():
        yield start_stack(monkeypatch)


def create_key(scopes: frozenset[Scope] = ALL_SCOPES, tenant: str = "default") -> str:
    return services().keys.create(name="extra", scopes=scopes, tenant=tenant)
