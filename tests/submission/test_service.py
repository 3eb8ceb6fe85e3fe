"""`postroom submission-server`, the container entry point of the optional AWS service: settings from the
environment, the TLS certificate from Secrets Manager / SSM / files (never logged), both listeners over one handler,
and a drain on SIGTERM - tested with smtplib on loopback, through the local stack's API, worker and MX sink."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from postroom.core import aws
from postroom.local.stack import LocalStack
from postroom.protocols.submission import submission_service as svc
from postroom.protocols.submission.smtp_listener import SWEEP_EVERY, RateLimiter
from postroom.protocols.submission.submission_service import (
    CertificateInfo,
    ServiceSettings,
    SettingsError,
    SubmissionService,
    TlsMaterial,
    TlsSetupError,
)
from postroom.protocols.tlscert import write_self_signed
from postroom.testing.smtp_peers import RecordingSink
from tests.submission.test_submission import auth_plain, client_context, message, wait_for

HOSTNAME = "smtp.shop.example"


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("service-tls"), HOSTNAME)


def bundle(cert: Path, key: Path) -> str:
    """What an operator stores: `cat fullchain.pem privkey.pem`."""
    return cert.read_text() + key.read_text()


def key_body(key: Path) -> str:
    """A run of the key's base64 text: if it shows up anywhere, the key leaked."""
    return "".join(key.read_text().splitlines()[1:-1])[10:60]


# ---------------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------------


def test_settings_take_defaults_and_the_certificate_from_a_secret() -> None:
    settings = ServiceSettings.from_env(
        {
            "POSTROOM_API_URL": "https://abc.execute-api.eu-west-1.amazonaws.com/api",
            "POSTROOM_SUBMISSION_TLS_SECRET": "/x",
        }
    )
    assert (settings.host, settings.starttls_port, settings.tls_port) == ("0.0.0.0", 2587, 2465)
    assert (settings.rate_per_minute, settings.drain_seconds, settings.hostname) == (600, 20.0, "")
    assert settings.certificate_file is None


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        ServiceSettings.from_env(
            {
                "POSTROOM_API_URL": "abc.execute-api",
                "POSTROOM_SUBMISSION_TLS_SECRET": "/x",
                "POSTROOM_SUBMISSION_CERT_FILE": "/cert.pem",
                "POSTROOM_SUBMISSION_PORT": "587x",
                "POSTROOM_SUBMISSION_TLS_PORT": "70000",
                "POSTROOM_SUBMISSION_RATE_PER_MINUTE": "1.5",
            }
        )
    text = str(caught.value)
    for name in (
        "POSTROOM_API_URL",
        "either as POSTROOM_SUBMISSION_TLS_SECRET",
        "POSTROOM_SUBMISSION_PORT must be a number",
        "POSTROOM_SUBMISSION_TLS_PORT must be a whole number from 0 to 65535",
        "POSTROOM_SUBMISSION_RATE_PER_MINUTE must be a whole number",
    ):
        assert name in text
    with pytest.raises(SettingsError, match="go together"):
        ServiceSettings.from_env({"POSTROOM_API_URL": "http://x", "POSTROOM_SUBMISSION_KEY_FILE": "/key.pem"})
    with pytest.raises(SettingsError, match="must differ"):
        ServiceSettings.from_env(
            {
                "POSTROOM_API_URL": "http://x",
                "POSTROOM_SUBMISSION_TLS_SECRET": "s",
                "POSTROOM_SUBMISSION_PORT": "2500",
                "POSTROOM_SUBMISSION_TLS_PORT": "2500",
            }
        )


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() sets up the process's logging (root handlers); put the test process's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_bad_settings_exit_2_before_anything_listens(capsys: pytest.CaptureFixture[str], root_logging: None) -> None:
    assert svc.main({"POSTROOM_API_URL": "http://x"}) == 2
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "POSTROOM_SUBMISSION_TLS_SECRET" in record["message"]


# ---------------------------------------------------------------------------------------------------------------------
# The certificate
# ---------------------------------------------------------------------------------------------------------------------


def test_a_pem_bundle_in_either_order_and_the_json_form_give_the_same_material(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    forward = TlsMaterial.parse(bundle(cert, key), "s")
    backward = TlsMaterial.parse(key.read_text() + "\n" + cert.read_text(), "s")
    as_json = TlsMaterial.parse(json.dumps({"certificate": cert.read_text(), "private_key": key.read_text()}), "s")
    assert forward == backward == as_json
    assert forward.certificate_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in forward.key_pem
    # the key is kept out of the material's repr, so an assertion message or a log of the object cannot show it
    assert "PRIVATE" not in repr(forward)
    assert key_body(key) not in repr(forward)


def test_unusable_material_is_refused_without_quoting_it(pem: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = pem
    cases = {
        "no key": cert.read_text(),
        "no certificate": key.read_text(),
        "two keys": bundle(cert, key) + key.read_text(),
        "encrypted": cert.read_text()
        + "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "bad json": "{" + key.read_text(),
        "json without fields": json.dumps({"cert": cert.read_text(), "key": key.read_text()}),
    }
    for case, text in cases.items():
        with pytest.raises(TlsSetupError) as caught:
            TlsMaterial.parse(text, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:smtp-AbCdEf")
        assert "secret:smtp-AbCdEf" in str(caught.value), case
        assert key_body(key) not in str(caught.value), case
    # GIVEN a certificate and a key that belong to different pairs  THEN loading them fails, naming the source only
    _, other_key = write_self_signed(tmp_path, HOSTNAME)
    mismatched = TlsMaterial.parse(cert.read_text() + other_key.read_text(), "s")
    with pytest.raises(TlsSetupError, match="cannot be used together") as caught:
        svc.tls_context(mismatched, "the secret")
    assert key_body(other_key) not in str(caught.value)


def test_the_greeting_name_is_the_certificates_first_name_that_is_no_wildcard(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    info = CertificateInfo.of(TlsMaterial.parse(bundle(cert, key), "s"))
    assert info.names[:2] == (HOSTNAME, "localhost")
    assert info.greeting_name == HOSTNAME
    assert CertificateInfo(("*.shop.example", "smtp.shop.example"), info.not_after).greeting_name == HOSTNAME


def test_ssm_names_and_arns_are_told_from_secrets_manager_ones() -> None:
    assert svc.is_ssm_parameter("/postroom/smtp-tls")
    assert svc.is_ssm_parameter("arn:aws:ssm:eu-west-1:123456789012:parameter/postroom/smtp-tls")
    assert not svc.is_ssm_parameter("postroom/smtp-tls")
    assert not svc.is_ssm_parameter("arn:aws:secretsmanager:eu-west-1:123456789012:secret:postroom/smtp-tls-AbCdEf")


@pytest.fixture
def emulated_aws() -> Iterator[None]:
    aws.reset_clients()  # clients are cached per process; these must be made inside the emulation
    with mock_aws():
        yield
    aws.reset_clients()


def test_the_certificate_is_read_from_secrets_manager_or_ssm_by_name_or_arn(
    pem: tuple[Path, Path], emulated_aws: None
) -> None:
    cert, key = pem
    text = bundle(cert, key)
    secret_arn = boto3.client("secretsmanager").create_secret(Name="postroom/smtp-tls", SecretString=text)["ARN"]
    boto3.client("ssm").put_parameter(Name="/postroom/smtp-tls", Value=text, Type="SecureString")
    parameter_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/postroom/smtp-tls"
    expected = TlsMaterial.parse(text, "reference")
    for source in ("postroom/smtp-tls", secret_arn, "/postroom/smtp-tls", parameter_arn):
        settings = ServiceSettings(api_url="http://x", tls_secret=source)
        assert svc.load_tls_material(settings) == expected, source
    # A secret that does not exist (or may not be read) stops the start with AWS's reason and the name
    with pytest.raises(TlsSetupError, match="cannot read the TLS secret postroom/missing"):
        svc.load_tls_material(ServiceSettings(api_url="http://x", tls_secret="postroom/missing"))


# ---------------------------------------------------------------------------------------------------------------------
# The process, end to end: secret in the local stack's emulated Secrets Manager, smtplib, the worker, the MX sink
# ---------------------------------------------------------------------------------------------------------------------


def postroom_command() -> list[str]:
    script = Path(sys.executable).with_name("postroom")
    return [str(script)] if script.exists() else [sys.executable, "-m", "postroom.cli"]


class ServerProcess:
    """`postroom submission-server` as ECS runs it; its JSON log lines are read on a thread as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [*postroom_command(), "submission-server"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def record(self, message: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith("{") and json.loads(line).get("message") == message:
                    return json.loads(line)
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line {message!r}; output: {''.join(self.lines)[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.e2e
def test_the_server_process_submits_through_the_api_and_stops_cleanly_on_sigterm(
    local: LocalStack, peers: Any, pem: tuple[Path, Path]
) -> None:
    sink, _ = peers
    cert, key = pem
    # GIVEN the certificate bundle stored in (emulated) Secrets Manager, as an operator stores it for the task
    secrets = boto3.client("secretsmanager", endpoint_url=local.aws_endpoint)
    arn = secrets.create_secret(Name="postroom/submission-tls", SecretString=bundle(cert, key))["ARN"]
    env = {
        **os.environ,
        "POSTROOM_API_URL": local.api_url,
        "POSTROOM_SUBMISSION_TLS_SECRET": arn,
        "POSTROOM_SUBMISSION_HOST": "127.0.0.1",
        "POSTROOM_SUBMISSION_PORT": "0",
        "POSTROOM_SUBMISSION_TLS_PORT": "0",
        "POSTROOM_SUBMISSION_DRAIN_SECONDS": "5",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    server = ServerProcess(env)
    try:
        # WHEN it starts  THEN it says where it listens and which certificate it serves - by name, never its content
        started = server.record("SMTP submission listening")
        assert (started["tls_source"], started["greeting_name"]) == (arn, HOSTNAME)
        assert HOSTNAME in started["certificate_names"]
        context = client_context(cert)
        with smtplib.SMTP("127.0.0.1", started["starttls_port"], timeout=10) as client:
            assert client.ehlo()[1].split(b"\n")[0] == HOSTNAME.encode()
            # no AUTH before TLS, even from loopback: every client of the service comes over a network
            assert auth_plain(client, local.api_key) == 538
            client.starttls(context=context)
            client.login("crm", local.api_key)
            assert client.send_message(message(subject="service starttls")) == {}
        with smtplib.SMTP_SSL("127.0.0.1", started["tls_port"], timeout=10, context=context) as client:
            client.login("crm", local.api_key)
            client.send_message(message(subject="service implicit tls"))
        assert b"Sent by a tool that only knows SMTP settings." in wait_for(sink, "service starttls")
        wait_for(sink, "service implicit tls")
        # WHEN ECS stops the task  THEN it drains and exits 0 well within the stop timeout
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
        assert time.monotonic() - began < 5
        assert server.record("SMTP submission stopped")["queued"] == 2
        # ... and no line it wrote carries the key or the API key
        output = "".join(server.lines)
        assert "PRIVATE KEY" not in output
        assert key_body(key) not in output
        assert local.api_key not in output
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", started["starttls_port"]), timeout=2).close()
    finally:
        server.stop()


@pytest.mark.e2e
def test_a_bad_secret_stops_the_start_with_a_reason(local: LocalStack) -> None:
    env = {
        **os.environ,
        "POSTROOM_API_URL": local.api_url,
        "POSTROOM_SUBMISSION_TLS_SECRET": "postroom/no-such-secret",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    server = ServerProcess(env)
    try:
        assert server.process.wait(30) == 1
        assert "cannot read the TLS secret postroom/no-such-secret" in "".join(server.lines)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------------------------
# In-process: one handler for both ports, and the drain
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def running(local: LocalStack, pem: tuple[Path, Path]) -> Iterator[SubmissionService]:
    cert, key = pem
    settings = ServiceSettings(
        api_url=local.api_url, certificate_file=cert, key_file=key, host="127.0.0.1", starttls_port=0, tls_port=0
    )
    material = svc.load_tls_material(settings)
    service = SubmissionService(settings, svc.tls_context(material, "files"), HOSTNAME).start()
    yield service
    service.stop()


def logged_in(port: int, cert: Path, key: str) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=10)
    client.starttls(context=client_context(cert))
    client.login("crm", key)
    return client


@pytest.mark.e2e
def test_failed_logins_on_one_port_lock_the_address_out_of_both(
    running: SubmissionService, local: LocalStack, pem: tuple[Path, Path]
) -> None:
    cert, _ = pem
    ports = running.ports()
    for _ in range(5):
        with smtplib.SMTP("127.0.0.1", ports["starttls"], timeout=10) as client:
            client.starttls(context=client_context(cert))
            client.ehlo()
            assert auth_plain(client, "pr_wrong") == 535
    with smtplib.SMTP_SSL("127.0.0.1", ports["tls"], timeout=10, context=client_context(cert)) as client:
        client.ehlo()
        assert auth_plain(client, local.api_key) == 454


@pytest.mark.e2e
def test_draining_finishes_the_message_in_progress_and_turns_new_work_away(
    running: SubmissionService, local: LocalStack, peers: Any, pem: tuple[Path, Path]
) -> None:
    sink: RecordingSink = peers[0]
    cert, _ = pem
    port = running.ports()["starttls"]
    # GIVEN one client in the middle of DATA and another logged in but idle
    busy = logged_in(port, cert, local.api_key)
    idle = logged_in(port, cert, local.api_key)
    assert busy.mail("orders@shop.example")[0] == 250
    assert busy.rcpt("ann@example.org")[0] == 250
    assert busy.docmd("DATA")[0] == 354
    # WHEN the service drains (SIGTERM)
    drained: list[int] = []
    drainer = threading.Thread(target=lambda: drained.append(running.drain(10)))
    drainer.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the listener still accepts connections while draining")
    # THEN the idle client is told 421 when it tries to start a message (it retries elsewhere, nothing is lost) ...
    assert idle.mail("orders@shop.example")[0] == 421
    idle.close()
    # ... the message in progress is still accepted and queued ...
    content = message(subject="finished while draining").as_bytes().replace(b"\n", b"\r\n")
    busy.send(content + b"\r\n.\r\n")
    code, reply = busy.getreply()
    assert code == 250
    assert reply.startswith(b"2.0.0 queued as msg_")
    busy.quit()
    # ... and once both are gone the service stops before its deadline, with nobody cut off
    drainer.join(10)
    assert drained == [0]
    wait_for(sink, "finished while draining")


def test_an_api_that_does_not_answer_is_a_temporary_failure_not_a_lockout(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    # GIVEN an API URL nothing listens on (the API or the way to it is down)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = ServiceSettings(
        api_url=f"http://127.0.0.1:{closed_port}/api",
        certificate_file=cert,
        key_file=key,
        host="127.0.0.1",
        starttls_port=0,
        tls_port=0,
    )
    service = SubmissionService(settings, svc.tls_context(svc.load_tls_material(settings), "files"), HOSTNAME).start()
    try:
        with smtplib.SMTP_SSL("127.0.0.1", service.ports()["tls"], timeout=10, context=client_context(cert)) as client:
            client.ehlo()
            replies = [client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0crm\0pr_key").decode()) for _ in range(7)]
        # THEN every login is told to retry later (454), and none counts towards the failed-login lockout
        assert {code for code, _ in replies} == {454}
        assert all(b"temporary authentication failure" in text for _, text in replies)
        assert service.handler.failed_logins.count("127.0.0.1") == 0
    finally:
        service.stop()


def test_the_rate_limiters_forget_keys_whose_window_has_passed() -> None:
    # GIVEN many client addresses that each failed a login once (a scan from many addresses)
    limiter = RateLimiter(limit=5, window=0.05)
    for number in range(2000):
        limiter.add(f"198.51.100.{number}")
    assert len(limiter) == 2000
    # WHEN their window has passed and the limiter keeps being used
    time.sleep(0.1)
    for _ in range(SWEEP_EVERY):
        limiter.count("203.0.113.7")
    # THEN it no longer holds them (a service running for months would otherwise grow without bound)
    assert len(limiter) == 1
    # ... and what is still inside its window is kept
    limiter.add("203.0.113.7")
    for _ in range(SWEEP_EVERY):
        limiter.count("192.0.2.1")
    assert limiter.count("203.0.113.7") == 1
