"""A direct-SMTP domain added through ``/v1/domains`` is signed by the worker with the keys Postroom made for it,
without a DkimSelectors redeploy: both signatures verify against the records the API answered, served by the
loopback DNS server, after a real SMTP server received the message."""

from __future__ import annotations

from collections.abc import Iterator

import dkim
import pytest

from postroom.deliver.delivery_errors import NoSuchDomainError
from postroom.deliver.mx import MxResolver
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink
from tests.deliverability.conftest import SmtpStack, smtp_stack_for

DOMAIN = "news.example"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, dns_server: LoopbackDnsServer, sink: RecordingSink) -> Iterator[SmtpStack]:
    # The stack's default path is SES: the domain must go over SMTP because it was added as an SMTP domain.
    yield from smtp_stack_for(monkeypatch, dns_server, sink, {"DefaultDelivery": "ses"})


def _verifies(message: bytes, index: int, dns_server: LoopbackDnsServer) -> bool:
    resolver = MxResolver([dns_server.nameserver], timeout=1.0)

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            records = resolver.txt(name.decode())
        except NoSuchDomainError:
            return None
        return records[0] if records else None

    return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=lookup))


def test_an_api_added_smtp_domain_is_signed_with_its_own_keys(stack: SmtpStack, sink: RecordingSink) -> None:
    # GIVEN a domain added through the API, its answered records published, and verified
    status, created = stack.stack.request("POST", "/v1/domains", {"name": DOMAIN, "delivery": "smtp"})
    assert status == 201, created
    stack.dns.update_zone({r["name"]: {r["type"]: [r["value"]]} for r in created["records"] if r["type"] == "TXT"})
    status, verified = stack.stack.request("POST", f"/v1/domains/{DOMAIN}/verify")
    assert verified["state"] == "verified", verified
    # WHEN mail from it is sent with delivery "auto" and the worker runs
    message_id = stack.send(**{"from": f"News <hello@{DOMAIN}>", "to": ["ann@example.org"]})
    stack.run_worker()
    # THEN it went over SMTP, carrying an RSA and an Ed25519 signature of d=news.example that both verify
    assert stack.status(message_id)["status"] == "delivered"
    received = sink.messages[0].content
    assert received.count(b"DKIM-Signature:") == 2
    assert f"d={DOMAIN}".encode() in received
    assert _verifies(received, 0, stack.dns)
    assert _verifies(received, 1, stack.dns)
