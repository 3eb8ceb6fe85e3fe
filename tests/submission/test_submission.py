"""SMTP submission with real clients: smtplib over STARTTLS / implicit TLS with AUTH, through the local stack's raw
endpoint and worker to a loopback MX sink."""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from postroom.local.stack import LocalStack, StackConfig
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import SubmissionOptions, submission_server
from postroom.protocols.tlscert import server_context, write_self_signed
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[RecordingSink, LoopbackDnsServer]]:
    zone = {"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}}
    with RecordingSink() as sink, LoopbackDnsServer(zone=zone) as dns:
        yield sink, dns


@pytest.fixture
def local(peers: tuple[RecordingSink, LoopbackDnsServer], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    # Function-scoped: the suite's autouse fixture resets AWS/POSTROOM environment variables around every test.
    sink, dns = peers
    monkeypatch.setenv("POSTROOM_RETRY_BASE_SECONDS", "0")
    config = StackConfig(
        api_port=0,
        sandbox=False,
        parameters={
            "SendingDomains": "shop.example",
            "DefaultDelivery": "smtp",
            "DnsNameservers": f"127.0.0.1:{dns.port}",
            "SmtpPort": str(sink.port),
        },
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    cert, key = write_self_signed(tmp_path_factory.mktemp("tls"))
    return server_context(cert, key), cert


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


def message(sender: str = "orders@shop.example", subject: str = "via SMTP") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Shop <{sender}>"
    msg["To"] = "ann@example.org"
    msg["Subject"] = subject
    msg.set_content("Sent by a tool that only knows SMTP settings.\n")
    return msg


def wait_for(sink: RecordingSink, subject: str, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in sink.messages:
            if f"Subject: {subject}".encode() in received.content:
                return received.content
        time.sleep(0.05)
    raise AssertionError(f"no message {subject!r} reached the sink")


def test_starttls_auth_submission_reaches_the_mx(local: LocalStack, peers, tls) -> None:
    sink, _ = peers
    context, cert = tls
    options = SubmissionOptions(loopback_auth_without_tls=False)
    server = submission_server(PostroomClient(local.api_url), tls_context=context, options=options)
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo("crm.example")
            # GIVEN no TLS yet WHEN the client tries to log in THEN it is told to STARTTLS first
            assert "starttls" in client.esmtp_features
            code, _ = client.docmd("AUTH", "PLAIN AGFwaQBzZWNyZXQ=")
            assert code == 538
            client.starttls(context=client_context(cert))
            client.ehlo("crm.example")
            assert "size" in client.esmtp_features
            assert "8bitmime" in client.esmtp_features
            client.login("apikey", local.api_key)
            refused = client.send_message(message(subject="starttls submission"))
            assert refused == {}
        content = wait_for(sink, "starttls submission")
        assert b"Sent by a tool that only knows SMTP settings." in content
        assert server.handler.queued
        assert server.handler.queued[0].startswith("msg_")
    finally:
        server.stop()


def test_implicit_tls_on_465_style_listener(local: LocalStack, peers, tls) -> None:
    sink, _ = peers
    context, cert = tls
    server = submission_server(PostroomClient(local.api_url), tls_context=context, implicit_tls=True)
    server.start()
    try:
        with smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=10, context=client_context(cert)) as client:
            client.login("apikey", local.api_key)
            client.send_message(message(subject="implicit tls"))
        wait_for(sink, "implicit tls")
    finally:
        server.stop()


@pytest.fixture
def plain_server(local: LocalStack) -> Iterator:
    server = submission_server(
        PostroomClient(local.api_url), options=SubmissionOptions(rate_per_minute=3, data_size_limit=200_000)
    )
    server.start()
    yield server
    server.stop()


def test_refusals_map_to_smtp_codes(local: LocalStack, plain_server) -> None:
    with smtplib.SMTP("127.0.0.1", plain_server.port, timeout=10) as client:
        client.ehlo()
        # MAIL before AUTH
        code, _ = client.mail("orders@shop.example")
        assert code == 530
        client.login("apikey", local.api_key)
        # a sender outside the configured identities: no open relay
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.send_message(message(sender="ceo@bank.example"))
        assert caught.value.smtp_code == 553
        # a malformed message (header line without a colon)
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("orders@shop.example", ["ann@example.org"], b"From: orders@shop.example\r\nBroken\r\n\r\nx")
        assert caught.value.smtp_code == 554
        # over SIZE: refused at DATA by the listener itself
        big = message(subject="big")
        big.set_content("x" * 300_000)
        with pytest.raises(smtplib.SMTPSenderRefused) as size_refused:
            client.send_message(big)
        assert size_refused.value.smtp_code == 552


def auth_plain(client: smtplib.SMTP, password: str) -> int:
    """One AUTH PLAIN attempt (smtplib's login() would try every mechanism and count as several failures)."""
    token = base64.b64encode(b"\0apikey\0" + password.encode()).decode()
    code, _ = client.docmd("AUTH", f"PLAIN {token}")
    return code


def test_wrong_passwords_are_refused_then_locked_out(local: LocalStack, plain_server) -> None:
    codes = []
    for _ in range(7):
        with smtplib.SMTP("127.0.0.1", plain_server.port, timeout=10) as client:
            client.ehlo()
            codes.append(auth_plain(client, "pr_wrong"))
    assert codes[:5] == [535] * 5
    assert codes[5:] == [454, 454]
    # the lockout is per client address: the real key is refused too, until the window passes
    with smtplib.SMTP("127.0.0.1", plain_server.port, timeout=10) as client:
        client.ehlo()
        assert auth_plain(client, local.api_key) == 454


def test_per_key_rate_limit(local: LocalStack, plain_server) -> None:
    with smtplib.SMTP("127.0.0.1", plain_server.port, timeout=10) as client:
        client.login("apikey", local.api_key)
        for i in range(3):
            client.send_message(message(subject=f"rate {i}"))
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.send_message(message(subject="rate 3"))
        assert caught.value.smtp_code == 450


def test_connection_dropped_mid_data_queues_nothing(local: LocalStack, plain_server) -> None:
    before = list(plain_server.handler.queued)
    with socket.create_connection(("127.0.0.1", plain_server.port), timeout=10) as raw:
        reader = raw.makefile("rb")

        def say(line: bytes) -> bytes:
            raw.sendall(line + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            return reply

        reader.readline()  # greeting
        say(b"EHLO drop.example")
        assert say(b"AUTH PLAIN " + base64.b64encode(b"\0apikey\0" + local.api_key.encode())).startswith(b"235")
        assert say(b"MAIL FROM:<orders@shop.example>").startswith(b"250")
        assert say(b"RCPT TO:<ann@example.org>").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        raw.sendall(b"From: orders@shop.example\r\nTo: ann@example.org\r\nSubject: dropped\r\n\r\nhalf a mess")
    time.sleep(0.3)
    assert list(plain_server.handler.queued) == before


def test_bridge_serves_submission_over_the_api(local: LocalStack, peers, tmp_path: Path) -> None:
    from postroom.protocols.bridge.runner import Bridge, BridgeConfig

    sink, _ = peers
    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=0,
        smtps_port=0,
        imap_port=None,
        pop3_port=None,
        imaps_port=None,
        pop3s_port=None,
        state_dir=tmp_path,
    )
    with Bridge(config) as bridge:
        ports = bridge.ports()
        context = client_context(bridge.certificate)
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as client:
            client.starttls(context=context)
            client.login("me", local.api_key)
            client.send_message(message(subject="bridge starttls"))
        with smtplib.SMTP_SSL("127.0.0.1", ports["smtps"], timeout=10, context=context) as client:
            client.login("me", local.api_key)
            client.send_message(message(subject="bridge implicit"))
    wait_for(sink, "bridge starttls")
    wait_for(sink, "bridge implicit")


def test_a_retried_transaction_is_queued_once_and_a_bare_repeat_twice(local: LocalStack) -> None:
    server = submission_server(PostroomClient(local.api_url))
    server.start()
    # GIVEN a message with a Message-ID, sent twice as a client does when the answer to DATA was lost
    with_id = message(subject="retried")
    with_id["Message-ID"] = "<retry-1@crm.example>"
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.login("apikey", local.api_key)
            client.send_message(with_id)
            client.send_message(with_id)
            # AND a bare message (no Message-ID) sent twice on purpose, as a script's hourly notice is
            client.send_message(message(subject="hourly notice"))
            client.send_message(message(subject="hourly notice"))
    finally:
        server.stop()
    queued = server.handler.queued
    # THEN the retry is answered with the first message's id, and both bare messages are queued
    assert queued[0] == queued[1]
    assert len(set(queued[2:])) == 2
