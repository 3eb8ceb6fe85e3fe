"""DKIM: messages signed on their way out pass dkimpy's verification after a real SMTP server received them, with the
public keys served by a real DNS server on loopback; keys come from SSM / Secrets Manager (moto) through Powertools."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import dkim
import pytest
from moto import mock_aws

from postroom.accept.mime_build import build_message, message_id_header, render
from postroom.accept.models import SendRequest
from postroom.cli import main
from postroom.core import aws
from postroom.core.delivery_results import Outcome
from postroom.deliver.delivery_errors import NoSuchDomainError
from postroom.deliver.dkim import (
    DkimAlgorithm,
    DkimKey,
    DkimKeyError,
    DkimSigner,
    ParameterKeyStore,
    SigningSmtpAgent,
    generate_key,
)
from postroom.deliver.mx import MxResolver
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions
from postroom.testing.dns_server import LoopbackDnsServer
from postroom.testing.smtp_peers import RecordingSink, Stage
from tests.deliverability.conftest import HELO_NAME, SmtpStack, smtp_stack_for

DnsFunc = Callable[..., bytes | None]


@pytest.fixture(scope="module")
def rsa_key() -> tuple[DkimKey, str]:
    return generate_key("shop.example", "s2026a", DkimAlgorithm.RSA)


@pytest.fixture(scope="module")
def ed_key() -> tuple[DkimKey, str]:
    return generate_key("shop.example", "e2026a", DkimAlgorithm.ED25519)


@pytest.fixture
def zone(dns_server: LoopbackDnsServer) -> LoopbackDnsServer:
    dns_server.set_zone({"example.org": {"MX": [(10, "mx.example.org")]}, "mx.example.org": {"A": ["127.0.0.1"]}})
    return dns_server


def publish(dns_server: LoopbackDnsServer, *keys: DkimKey) -> None:
    dns_server.update_zone({key.dns_name: {"TXT": [key.dns_value]} for key in keys})


@pytest.fixture
def dnsfunc(dns_server: LoopbackDnsServer) -> DnsFunc:
    """dkimpy's DNS hook, answered by the loopback DNS server (dkimpy passes the name with a final dot)."""
    resolver = MxResolver([dns_server.nameserver], timeout=1.0)

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            records = resolver.txt(name.decode())
        except NoSuchDomainError:
            return None  # dkimpy's contract: no record
        return records[0] if records else None

    return lookup


class DictKeys:
    """A key store over a dict: the signer's port, for tests that are about signing rather than about AWS."""

    def __init__(self, *keys: DkimKey) -> None:
        self.keys = {(key.domain, key.selector): key for key in keys}

    def get(self, domain: str, selector: str) -> DkimKey:
        try:
            return self.keys[(domain, selector)]
        except KeyError:
            raise DkimKeyError(f"no key {selector} for {domain}") from None


def message(**fields: object) -> bytes:
    body: dict[str, object] = {
        "from": "Jörg's Shop <orders@shop.example>",
        "to": ["Ann <ann@example.org>"],
        "subject": "Ihre Bestellung ✓",
        "text": "Danke!\n.A line with a leading dot\nFrom here on, mbox would have mangled this line.\n",
        "html": "<p>Danke!</p>",
        **fields,
    }
    request = SendRequest.model_validate(body)
    header = message_id_header("msg_01jabcdefghjkmnpqrstvwxyz0", "shop.example")
    return render(build_message(request, message_id=header, date=datetime(2026, 2, 3, tzinfo=UTC)))


@pytest.fixture
def agent(zone: LoopbackDnsServer, sink: RecordingSink) -> Iterator[SmtpDeliveryAgent]:
    resolver = MxResolver([zone.nameserver], timeout=1.0)
    with SmtpDeliveryAgent(resolver, SmtpOptions(helo_name=HELO_NAME, port=sink.port, timeout=2.0)) as smtp:
        yield smtp


def signatures(raw: bytes) -> list[dict[bytes, bytes]]:
    fields = dkim.DKIM(raw)
    return [dkim.util.parse_tag_value(value) for name, value in fields.headers if name.lower() == b"dkim-signature"]


# -- signing, over SMTP ----------------------------------------------------------------------------------------------


def test_both_signatures_verify_after_the_message_crossed_an_smtp_server(
    zone: LoopbackDnsServer,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    dnsfunc: DnsFunc,
    rsa_key: tuple[DkimKey, str],
    ed_key: tuple[DkimKey, str],
) -> None:
    # GIVEN an RSA and an Ed25519 key for shop.example, both published in DNS
    (rsa, _), (ed, _) = rsa_key, ed_key
    publish(zone, rsa, ed)
    signer = DkimSigner({"shop.example": ("s2026a", "e2026a")}, DictKeys(rsa, ed))

    # WHEN a message goes out through the signing agent to a real SMTP server
    (result,) = SigningSmtpAgent(agent, signer).deliver(
        "example.org", "orders@shop.example", ["ann@example.org"], message()
    )

    # THEN what the server received carries two signatures, RSA on top, and each verifies against DNS
    assert result.outcome is Outcome.DELIVERED
    received = sink.messages[0].content
    tags = signatures(received)
    assert [(t[b"a"], t[b"s"], t[b"d"], t[b"c"]) for t in tags] == [
        (b"rsa-sha256", b"s2026a", b"shop.example", b"relaxed/relaxed"),
        (b"ed25519-sha256", b"e2026a", b"shop.example", b"relaxed/relaxed"),
    ]
    verifier = dkim.DKIM(received)
    assert verifier.verify(idx=0, dnsfunc=dnsfunc)
    assert verifier.verify(idx=1, dnsfunc=dnsfunc)
    # AND the header fields that matter are signed, the singletons once more than they occur (no later additions)
    signed = [name.strip() for name in tags[0][b"h"].split(b":")]
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type", b"reply-to"):
        assert name in signed
    assert signed.count(b"from") == 2
    assert b"l" not in tags[0]  # never a body length limit: nothing may be appended below a signed body


def test_a_tampered_message_fails_verification(
    zone: LoopbackDnsServer,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    dnsfunc: DnsFunc,
    rsa_key: tuple[DkimKey, str],
) -> None:
    # GIVEN a signed, delivered message
    rsa, _ = rsa_key
    publish(zone, rsa)
    signer = DkimSigner({"shop.example": ("s2026a",)}, DictKeys(rsa))
    SigningSmtpAgent(agent, signer).deliver("example.org", "orders@shop.example", ["ann@example.org"], message())
    received = sink.messages[0].content
    assert dkim.verify(received, dnsfunc=dnsfunc)
    # WHEN the subject or the body is changed on the way, or a second Subject is added
    changed_subject = re.sub(rb"Subject: [^\r]*", b"Subject: Cheap pills", received, count=1)
    changed_body = received.replace(b"Danke!", b"Thanks", 1)
    added_subject = received.replace(b"\r\n\r\n", b"\r\nSubject: Cheap pills\r\n\r\n", 1)
    # THEN none verifies
    for forged in (changed_subject, changed_body, added_subject):
        assert forged != received
        assert not dkim.verify(forged, dnsfunc=dnsfunc)


def test_a_domain_without_selectors_is_sent_unsigned(
    sink: RecordingSink, agent: SmtpDeliveryAgent, rsa_key: tuple[DkimKey, str]
) -> None:
    signer = DkimSigner({"other.example": ("s1",)}, DictKeys(rsa_key[0]))
    raw = message()
    SigningSmtpAgent(agent, signer).deliver("example.org", "orders@shop.example", ["ann@example.org"], raw)
    assert sink.messages[0].content == raw


def test_an_unreadable_key_defers_instead_of_sending_unsigned(
    sink: RecordingSink, agent: SmtpDeliveryAgent, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a selector configured for shop.example whose key the store does not have
    signer = DkimSigner({"shop.example": ("gone",)}, DictKeys())
    # WHEN delivering
    (result,) = SigningSmtpAgent(agent, signer).deliver(
        "example.org", "orders@shop.example", ["ann@example.org"], message()
    )
    # THEN nothing was sent, and the recipient waits for a retry with a configuration status
    assert sink.messages == []
    assert (result.outcome, result.enhanced_status, result.bounce_type) == (Outcome.DEFERRED, "4.3.5", "soft")
    assert "no key gone for shop.example" in result.reply
    assert "DKIM signing failed" in caplog.text


# -- keys --------------------------------------------------------------------------------------------------------------


def test_keys_never_show_in_a_repr_or_an_error(rsa_key: tuple[DkimKey, str]) -> None:
    key, pem = rsa_key
    body = pem.splitlines()[1]
    assert body not in repr(key)
    assert key.public_key.decode() not in repr(key)
    with pytest.raises(DkimKeyError) as error:
        DkimKey.from_pem("shop.example", "bad", pem.replace(body, body[::-1]))
    assert body[::-1] not in str(error.value)
    assert str(error.value) == "DKIM key bad for shop.example is not an unencrypted PEM private key"


def test_short_rsa_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2048"):
        generate_key("shop.example", "s1", DkimAlgorithm.RSA, bits=1024)


@pytest.fixture
def aws_account() -> Iterator[None]:
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            err.write(str(exit_.code))
    return code, out.getvalue(), err.getvalue()


def txt_value(zone_line: str) -> str:
    """The record text of a printed zone-file line: its quoted strings, joined."""
    return "".join(re.findall(r'"([^"]*)"', zone_line))


@pytest.mark.parametrize(("source", "algorithm"), [("ssm", "rsa"), ("secretsmanager", "ed25519")])
def test_cli_generates_stores_and_checks_a_key_that_then_signs(
    aws_account: None,
    zone: LoopbackDnsServer,
    sink: RecordingSink,
    agent: SmtpDeliveryAgent,
    dnsfunc: DnsFunc,
    source: str,
    algorithm: str,
) -> None:
    # GIVEN `postroom dkim generate` storing the private key
    code, out, err = cli(
        "dkim",
        "generate",
        "--domain",
        "shop.example",
        "--selector",
        "s2026b",
        "--algorithm",
        algorithm,
        "--store",
        source,
    )
    assert code == 0, err
    record_line = out.splitlines()[-1]
    assert record_line.startswith("s2026b._domainkey.shop.example. 3600 IN TXT (")
    assert "PRIVATE KEY" not in out + err
    if source == "ssm":
        stored = boto3.client("ssm").get_parameter(Name="/postroom/dkim/shop.example/s2026b", WithDecryption=True)
        assert stored["Parameter"]["Type"] == "SecureString"
    else:
        assert boto3.client("secretsmanager").describe_secret(SecretId="postroom/dkim/shop.example/s2026b")["Name"]

    # WHEN the check runs before the record is published, and after
    nameserver = f"127.0.0.1:{zone.port}"
    before = cli(
        "dkim",
        "check",
        "--domain",
        "shop.example",
        "--selector",
        "s2026b",
        "--source",
        source,
        "--nameserver",
        nameserver,
    )
    zone.update_zone({"s2026b._domainkey.shop.example": {"TXT": [txt_value(record_line)]}})
    after = cli(
        "dkim",
        "check",
        "--domain",
        "shop.example",
        "--selector",
        "s2026b",
        "--source",
        source,
        "--nameserver",
        nameserver,
    )

    # THEN it fails, then passes
    assert before[0] == 1
    assert "does not publish this key yet" in before[2]
    assert after[0] == 0, after
    # AND the stored key, read through Powertools, signs mail that verifies against the published record
    store = ParameterKeyStore.create(source, "postroom/dkim", max_age=300)
    signer = DkimSigner({"shop.example": ("s2026b",)}, store)
    SigningSmtpAgent(agent, signer).deliver("example.org", "orders@shop.example", ["ann@example.org"], message())
    assert dkim.verify(sink.messages[0].content, dnsfunc=dnsfunc)
    # AND generating the same selector again refuses to replace the key
    again = cli("dkim", "generate", "--domain", "shop.example", "--selector", "s2026b", "--store", source)
    assert again[0] != 0
    assert "rotate with a new selector" in again[2]


def test_a_replaced_key_is_picked_up_once_the_cache_expires(aws_account: None, rsa_key: tuple[DkimKey, str]) -> None:
    # GIVEN a key in Secrets Manager, read once through a store that caches for 300 s, and one that does not cache
    old, old_pem = rsa_key
    new, new_pem = generate_key("shop.example", "s2026a", DkimAlgorithm.RSA)
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="postroom/dkim/shop.example/s2026a", SecretString=old_pem)
    cached = ParameterKeyStore.create("secretsmanager", "postroom/dkim", max_age=300)
    uncached = ParameterKeyStore.create("secretsmanager", "postroom/dkim", max_age=0)
    assert cached.get("shop.example", "s2026a").public_key == old.public_key
    # WHEN an operator replaces the key material under the same selector
    secrets.put_secret_value(SecretId="postroom/dkim/shop.example/s2026a", SecretString=new_pem)
    # THEN the caching store keeps signing with the old key until its max_age, a fresh read sees the new one
    assert cached.get("shop.example", "s2026a").public_key == old.public_key
    assert uncached.get("shop.example", "s2026a").public_key == new.public_key


def test_a_missing_key_is_a_key_error_naming_it(aws_account: None) -> None:
    store = ParameterKeyStore.create("secretsmanager", "postroom/dkim", max_age=300)
    with pytest.raises(DkimKeyError, match=r"DKIM key postroom/dkim/shop.example/nope could not be read"):
        store.get("shop.example", "nope")


# -- in the worker ---------------------------------------------------------------------------------------------------


@pytest.fixture
def signing_stack(
    monkeypatch: pytest.MonkeyPatch, dns_server: LoopbackDnsServer, sink: RecordingSink
) -> Iterator[SmtpStack]:
    monkeypatch.setenv("POSTROOM_RETRY_BASE_SECONDS", "0")  # a deferred message is visible again at once
    # The stack's DkimSelectors parameter, as `sam deploy` would set it.
    yield from smtp_stack_for(
        monkeypatch, dns_server, sink, {"DkimSelectors": "shop.example=s2026a,shop.example=e2026a"}
    )


def test_the_worker_signs_at_hand_off_and_stores_the_mime_unsigned(
    signing_stack: SmtpStack, sink: RecordingSink, dnsfunc: DnsFunc
) -> None:
    # GIVEN a deployment with DKIM selectors for shop.example, their keys in SSM and published in DNS
    (rsa, rsa_pem), (ed, ed_pem) = (
        generate_key("shop.example", "s2026a", DkimAlgorithm.RSA),
        generate_key("shop.example", "e2026a", DkimAlgorithm.ED25519),
    )
    publish(signing_stack.dns, rsa, ed)
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/postroom/dkim/shop.example/s2026a", Value=rsa_pem, Type="SecureString")
    ssm.put_parameter(Name="/postroom/dkim/shop.example/e2026a", Value=ed_pem, Type="SecureString")
    sink.script(Stage.DATA, "451 4.3.0 try again later", times=1)

    # WHEN a message is sent, deferred once, and delivered by the next attempt
    message_id = signing_stack.send(to=["ann@example.org"])
    signing_stack.run_worker()
    assert signing_stack.status(message_id)["status"] == "deferred"
    signing_stack.run_worker()

    # THEN it was delivered with both signatures, each verifying
    record = signing_stack.status(message_id)
    assert (record["status"], record["attempts"]) == ("delivered", 2)
    received = sink.messages[0].content
    verifier = dkim.DKIM(received)
    assert verifier.verify(idx=0, dnsfunc=dnsfunc)
    assert verifier.verify(idx=1, dnsfunc=dnsfunc)
    # AND the stored MIME is unsigned: the signatures were put on top of exactly those bytes at the hand-off
    stored = (
        boto3.client("s3")
        .get_object(
            Bucket=signing_stack.stack.resources["BodiesBucket"]["Ref"], Key=f"messages/{message_id}/message.eml"
        )["Body"]
        .read()
    )
    assert b"DKIM-Signature" not in stored
    assert received.endswith(stored)
    assert received[: -len(stored)].count(b"DKIM-Signature:") == 2


def test_mail_through_the_smart_host_relay_is_signed_too(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    dns_server: LoopbackDnsServer,
    sink: RecordingSink,
    dnsfunc: DnsFunc,
    rsa_key: tuple[DkimKey, str],
) -> None:
    from tests.relay.upstream import upstream_server

    key, pem = rsa_key
    with upstream_server(tmp_path) as (upstream, port, ca):
        # GIVEN shop.example delivering through an authenticated smart host, with a DKIM selector configured
        monkeypatch.setenv("POSTROOM_RELAY_CA_FILE", str(ca))  # the upstream's private CA
        parameters = {
            "SendingDomains": "shop.example=relay",
            "RelayHost": f"127.0.0.1:{port}",
            "RelayAuth": "plain",
            "RelaySecretName": "/postroom/relay",
            "DkimSelectors": "shop.example=s2026a",
        }
        for stack in smtp_stack_for(monkeypatch, dns_server, sink, parameters):
            publish(dns_server, key)
            ssm = boto3.client("ssm")
            ssm.put_parameter(
                Name="/postroom/relay", Value='{"username": "u", "password": "app-password"}', Type="SecureString"
            )
            ssm.put_parameter(Name="/postroom/dkim/shop.example/s2026a", Value=pem, Type="SecureString")
            # WHEN a message is sent
            message_id = stack.send(to=["ann@example.org"])
            stack.run_worker()
            # THEN the relay received it signed, and the signature verifies
            assert stack.status(message_id)["recipients"][0]["delivery"] == "relay"
            ((_, _, received),) = upstream.received
            assert dkim.verify(received, dnsfunc=dnsfunc)
