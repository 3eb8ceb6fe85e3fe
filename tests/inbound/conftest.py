"""Fixtures for inbound mail and the mailbox API: the template's resources in moto (in-process), the real inbound
and mailbox API handlers, and helpers that build SES events and file messages through the real code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.core import aws
from postroom.core.auth import ALL_SCOPES, Scope
from postroom.local import template as tpl
from postroom.local.gateway import build_event
from postroom.local.handlers import LocalFunction
from postroom.local.inbound_smtp import ses_lambda_event, ses_message_id
from postroom.mailbox.mailbox_store import MailboxStore
from postroom.wiring.services import services
from tests.conftest import ROOT, Stack, load_function, start_stack

INBOUND = {"InboundDomains": "shop.example,help.example", "InboundCatchAll": "help.example=desk"}


@dataclass
class Inbound:
    stack: Stack
    inbound: LocalFunction
    mailbox_api: LocalFunction
    key: str  # all scopes, every mailbox

    @property
    def bucket(self) -> str:
        return self.stack.resources["InboundBucket"]["Ref"]

    @property
    def store(self) -> MailboxStore:
        return MailboxStore(aws.client("dynamodb"), services().settings.table)

    def receive(
        self,
        raw: bytes,
        recipients: list[str],
        *,
        received_at: datetime | None = None,
        mail_from: str = "ann@example.org",
        message_id: str | None = None,
        verdict: str = "PASS",
    ) -> dict[str, Any]:
        """What SES does: store the MIME under inbound/<id>, then invoke the inbound function with its event."""
        message_id = message_id or ses_message_id()
        boto3.client("s3").put_object(Bucket=self.bucket, Key=f"inbound/{message_id}", Body=raw)
        event = ses_lambda_event(
            message_id=message_id,
            received_at=received_at or datetime.now(UTC),
            mail_from=mail_from,
            recipients=recipients,
            content=raw,
            function_arn="arn:aws:lambda:us-east-1:123456789012:function:inbound",
            verdict=verdict,
        )
        return self.inbound.invoke(event)

    def call(
        self, method: str, path: str, body: Any = None, *, key: str | None = None, query: str = ""
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"}
        event = build_event(
            method=method,
            path=path,
            resource=path,
            query=query,
            headers=list(headers.items()),
            body=json.dumps(body).encode() if body is not None else b"",
            source_ip="127.0.0.1",
            path_parameters={},
            stage="api",
        )
        result = self.mailbox_api.invoke(event)
        payload = json.loads(result["body"]) if result.get("body") else {}
        return result["statusCode"], payload, result.get("headers") or {}


@pytest.fixture
def inbound(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbound]:
    with mock_aws():
        stack = start_stack(monkeypatch, INBOUND)
        template = tpl.load_template(ROOT / "template.yaml")
        key = services().keys.create(name="mail", scopes=ALL_SCOPES, mailboxes=frozenset({"*"}))
        yield Inbound(
            stack, load_function(template, "InboundFunction"), load_function(template, "MailboxApiFunction"), key
        )


def mailbox_key(*addresses: str, scopes: frozenset[Scope] = ALL_SCOPES) -> str:
    return services().keys.create(name="scoped", scopes=scopes, mailboxes=frozenset(addresses))


def make_mail(
    subject: str = "Hello",
    *,
    sender: str = "Ann <ann@example.org>",
    to: str = "support@shop.example",
    text: str | None = "Hi there.\n",
    html: str | None = None,
    attachments: list[tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{ses_message_id()}@example.org>"
    for name, value in (headers or {}).items():
        message[name] = value
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for filename, content, ctype in attachments or []:
        maintype, _, subtype = ctype.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=policy.SMTP)


def at(minutes: int) -> datetime:
    return datetime(2024, 5, 1, tzinfo=UTC) + timedelta(minutes=minutes)
