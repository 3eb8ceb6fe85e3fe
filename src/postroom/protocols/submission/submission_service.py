"""The SMTP submission listeners as a long-running service: ``postroom submission-server``, what the optional Fargate
task of template.yaml (``SubmissionService=Enabled``) runs behind its Network Load Balancer.

Settings come from the environment and are checked once, at start, all together. The TLS certificate and its key are
read once at start from Secrets Manager or an SSM SecureString (or from PEM files, off AWS) and never logged: only the
secret's name, the certificate's names and its expiry are. Both listeners share one handler, so the per-key message
rate and the failed-login lockout hold across ports 587 and 465.

Health: the load balancer's TCP health checks connect to the listener ports themselves. A port accepts connections
exactly when its listener serves, and the listeners bind only after the certificate loaded, so there is nothing else
to keep in step. On SIGTERM (ECS stopping the task, after it took the task out of the target groups) the listening
sockets close, a session between transactions is told ``421`` at its next ``MAIL``, sessions in the middle of a
message get up to ``drain_seconds`` to finish, and whatever is still open then is closed.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import (
    SubmissionController,
    SubmissionHandler,
    SubmissionOptions,
    submission_server,
)
from postroom.protocols.tlscert import server_context

log = logging.getLogger("postroom.protocols.submission")

# The bridge's ports: above 1024, so an unprivileged process may bind them; the load balancer maps 587 and 465 here.
DEFAULT_STARTTLS_PORT = 2587
DEFAULT_TLS_PORT = 2465
# ECS sends SIGKILL StopTimeout seconds after SIGTERM (template: 30); draining must end before that.
DEFAULT_DRAIN_SECONDS = 20.0
EXPIRY_WARNING = datetime.timedelta(days=14)

ENV_API_URL = "POSTROOM_API_URL"
ENV_TLS_SECRET = "POSTROOM_SUBMISSION_TLS_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_CERT_FILE = "POSTROOM_SUBMISSION_CERT_FILE"
ENV_KEY_FILE = "POSTROOM_SUBMISSION_KEY_FILE"
ENV_HOST = "POSTROOM_SUBMISSION_HOST"
ENV_STARTTLS_PORT = "POSTROOM_SUBMISSION_PORT"  # the same name the local stack uses for its STARTTLS listener
ENV_TLS_PORT = "POSTROOM_SUBMISSION_TLS_PORT"
ENV_HOSTNAME = "POSTROOM_SUBMISSION_HOSTNAME"
ENV_RATE = "POSTROOM_SUBMISSION_RATE_PER_MINUTE"
ENV_DRAIN = "POSTROOM_SUBMISSION_DRAIN_SECONDS"


class SettingsError(ValueError):
    """The environment does not describe a service that can start; the message lists every problem."""


class TlsSetupError(RuntimeError):
    """The certificate or its key could not be read or used. Messages name the source, never its content."""


@dataclass(frozen=True)
class ServiceSettings:
    api_url: str
    tls_secret: str = ""  # Secrets Manager secret (name or ARN), or SSM parameter ("/name" or ARN)
    certificate_file: Path | None = None  # instead of tls_secret: PEM files (running off AWS)
    key_file: Path | None = None
    # Every interface: in the task that is its one network interface, where the load balancer reaches it.
    host: str = "0.0.0.0"  # noqa: S104
    starttls_port: int = DEFAULT_STARTTLS_PORT  # 0 picks a free port (tests); the log line says which
    tls_port: int = DEFAULT_TLS_PORT
    hostname: str = ""  # the greeting's name; empty: the certificate's first DNS name
    rate_per_minute: int = 600
    drain_seconds: float = DEFAULT_DRAIN_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceSettings:
        problems: list[str] = []
        api_url = env.get(ENV_API_URL, "").strip()
        if not api_url.startswith(("https://", "http://")):
            problems.append(f"{ENV_API_URL} must be the Postroom API URL (the stack's ApiUrl output), got {api_url!r}")
        secret = env.get(ENV_TLS_SECRET, "").strip()
        cert_file, key_file = env.get(ENV_CERT_FILE, "").strip(), env.get(ENV_KEY_FILE, "").strip()
        if bool(secret) == bool(cert_file or key_file):
            problems.append(
                f"give the TLS certificate either as {ENV_TLS_SECRET} or as {ENV_CERT_FILE} + {ENV_KEY_FILE}"
            )
        elif not secret and not (cert_file and key_file):
            problems.append(f"{ENV_CERT_FILE} and {ENV_KEY_FILE} go together")
        starttls_port = _number(env, ENV_STARTTLS_PORT, DEFAULT_STARTTLS_PORT, 0, 65535, problems)
        tls_port = _number(env, ENV_TLS_PORT, DEFAULT_TLS_PORT, 0, 65535, problems)
        if starttls_port == tls_port != 0:
            problems.append(f"{ENV_STARTTLS_PORT} and {ENV_TLS_PORT} must differ")
        rate = _number(env, ENV_RATE, 600, 1, 1_000_000, problems)
        drain = _number(env, ENV_DRAIN, DEFAULT_DRAIN_SECONDS, 0, 3600, problems)
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(
            api_url=api_url,
            tls_secret=secret,
            certificate_file=Path(cert_file) if cert_file else None,
            key_file=Path(key_file) if key_file else None,
            host=env.get(ENV_HOST, "").strip() or cls.host,
            starttls_port=int(starttls_port),
            tls_port=int(tls_port),
            hostname=env.get(ENV_HOSTNAME, "").strip(),
            rate_per_minute=int(rate),
            drain_seconds=float(drain),
        )


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number, got {raw!r}")
        return default
    if not low <= value <= high or (isinstance(default, int) and not value.is_integer()):
        problems.append(f"{name} must be {'a whole number ' if isinstance(default, int) else ''}from {low} to {high}")
        return default
    return value


# --- the certificate --------------------------------------------------------------------------------------------

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class TlsMaterial:
    certificate_pem: bytes  # the server's certificate first, then its chain
    key_pem: bytes = field(repr=False)  # never in a repr, so never in a log line or an assertion message

    @classmethod
    def parse(cls, text: str, source: str) -> TlsMaterial:
        """A PEM bundle (certificate, chain and unencrypted private key, in any order: ``cat fullchain.pem
        privkey.pem``) or JSON ``{"certificate": "<PEM>", "private_key": "<PEM>"}``."""
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError:
                raise TlsSetupError(f"{source} starts like JSON but is not valid JSON") from None
            if not isinstance(data, dict) or not all(
                isinstance(data.get(k), str) for k in ("certificate", "private_key")
            ):
                raise TlsSetupError(f'{source}: JSON needs the string fields "certificate" and "private_key"')
            text = data["certificate"] + "\n" + data["private_key"]
        blocks = [(match.group(1), match.group(0)) for match in _PEM_BLOCK.finditer(text)]
        certificates = [block for label, block in blocks if label == "CERTIFICATE"]
        keys = [(label, block) for label, block in blocks if label.endswith("PRIVATE KEY")]
        if any(label == "ENCRYPTED PRIVATE KEY" for label, _ in keys):
            raise TlsSetupError(f"{source}: the private key is encrypted; store it without a passphrase")
        if len(keys) != 1 or not certificates:
            raise TlsSetupError(
                f"{source} must hold one PEM private key and at least one PEM certificate "
                f"(found {len(keys)} key(s) and {len(certificates)} certificate(s))"
            )
        return cls(
            certificate_pem="\n".join(certificates).encode() + b"\n",
            key_pem=keys[0][1].encode() + b"\n",
        )


def is_ssm_parameter(name: str) -> bool:
    """SSM names are paths ("/postroom/tls") or SSM ARNs; anything else is a Secrets Manager name or ARN."""
    return name.startswith("/") or (name.startswith("arn:") and name.split(":")[2:3] == ["ssm"])


def fetch_secret_text(name: str) -> str:
    """The secret's text, read once through Powertools Parameters with this process's boto3 clients."""
    from aws_lambda_powertools.utilities import parameters

    from postroom.core import aws

    try:
        if is_ssm_parameter(name):
            value: Any = parameters.SSMProvider(boto3_client=aws.client("ssm")).get(name, decrypt=True)
        else:
            value = parameters.SecretsProvider(boto3_client=aws.client("secretsmanager")).get(name)
    except parameters.exceptions.GetParameterError as error:
        # The AWS error says what went wrong (not found, access denied) and carries no secret material.
        raise TlsSetupError(f"cannot read the TLS secret {name}: {error}") from None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def load_tls_material(settings: ServiceSettings) -> TlsMaterial:
    if settings.tls_secret:
        return TlsMaterial.parse(fetch_secret_text(settings.tls_secret), settings.tls_secret)
    if settings.certificate_file is None or settings.key_file is None:
        raise TlsSetupError(f"no TLS certificate: set {ENV_TLS_SECRET}, or {ENV_CERT_FILE} and {ENV_KEY_FILE}")
    try:
        certificate = settings.certificate_file.read_text()
        key = settings.key_file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TlsSetupError(f"cannot read the certificate or key file: {error}") from None
    return TlsMaterial.parse(certificate + "\n" + key, f"{settings.certificate_file} + {settings.key_file}")


def tls_context(material: TlsMaterial, source: str) -> ssl.SSLContext:
    """A server context from PEM bytes. ``ssl`` loads keys only from files, so the key spends a moment in a private
    temporary directory (mode 0700, a tmpfs-backed volume in the task) and is deleted before this returns."""
    with tempfile.TemporaryDirectory(prefix="postroom-tls-") as directory:
        certificate_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        certificate_path.write_bytes(material.certificate_pem)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(material.key_pem)
        try:
            return server_context(certificate_path, key_path)
        except ssl.SSLError as error:
            # e.g. KEY_VALUES_MISMATCH: OpenSSL's reason names the problem, not the key.
            reason = error.reason or type(error).__name__
            raise TlsSetupError(f"{source}: the certificate and key cannot be used together ({reason})") from None


@dataclass(frozen=True)
class CertificateInfo:
    names: tuple[str, ...]  # DNS names (subject alternative names, else the common name)
    not_after: datetime.datetime

    @classmethod
    def of(cls, material: TlsMaterial) -> CertificateInfo:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        leaf = x509.load_pem_x509_certificate(material.certificate_pem)  # the first certificate of the bundle
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName
            )
        except x509.ExtensionNotFound:
            names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        return cls(names=tuple(names), not_after=leaf.not_valid_after_utc)

    @property
    def greeting_name(self) -> str:
        """The name clients connect to, for the 220 greeting and EHLO reply: the first name that is not a wildcard."""
        return next((name for name in self.names if not name.startswith("*")), "") or socket.getfqdn()


# --- the service --------------------------------------------------------------------------------------------------


class SubmissionService:
    """Both listeners over one handler; ``start()``, then ``drain()`` (which stops) or ``stop()``."""

    def __init__(self, settings: ServiceSettings, context: ssl.SSLContext, hostname: str) -> None:
        self.settings = settings
        options = SubmissionOptions(
            rate_per_minute=settings.rate_per_minute,
            hostname=hostname,
            # Clients come through the load balancer, never from loopback; even so, no AUTH without TLS here.
            loopback_auth_without_tls=False,
        )
        self.handler = SubmissionHandler(PostroomClient(settings.api_url), options)
        self.listeners = {
            "starttls": submission_server(
                self.handler.api,
                host=settings.host,
                port=settings.starttls_port,
                tls_context=context,
                handler=self.handler,
            ),
            "tls": submission_server(
                self.handler.api,
                host=settings.host,
                port=settings.tls_port,
                tls_context=context,
                implicit_tls=True,
                handler=self.handler,
            ),
        }
        self._started: list[SubmissionController] = []

    def start(self) -> SubmissionService:
        try:
            for listener in self.listeners.values():
                listener.start()
                self._started.append(listener)
        except BaseException:
            self.stop()  # the other port may already be bound
            raise
        return self

    def ports(self) -> dict[str, int]:
        return {name: listener.port for name, listener in self.listeners.items()}

    def drain(self, seconds: float) -> int:
        """Stop accepting, let open sessions finish for up to ``seconds``, then stop. Returns how many connections
        were still open at the deadline; stopping closes them (a client cut off before its 250 keeps its message and
        sends it again, as SMTP clients do)."""
        self.handler.draining = True
        for listener in self._started:
            listener.stop_accepting()
        deadline = time.monotonic() + seconds
        while self.handler.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        remaining = self.handler.open_connections
        self.stop()
        return remaining

    def stop(self) -> None:
        """Stop at once: aiosmtpd cancels the sessions and closes their connections."""
        while self._started:
            self._started.pop().stop()


def configure_logging(env: Mapping[str, str]) -> None:
    """One JSON object per line on stdout (the awslogs driver sends each to CloudWatch Logs as one event)."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service=env.get("POWERTOOLS_SERVICE_NAME", "postroom-submission")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = env.get("POWERTOOLS_LOG_LEVEL", "INFO").upper()
    root.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO")
    # aiosmtpd logs every connection at INFO, and the load balancer's health checks connect to both ports of every
    # task every 10 seconds from each of its nodes: that would be most of the log (and of its bill).
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def serve(settings: ServiceSettings, stop: threading.Event) -> int:
    """Load the certificate, start both listeners, wait for ``stop``, drain. Returns the process exit status."""
    material = load_tls_material(settings)
    source = settings.tls_secret or str(settings.certificate_file)
    context = tls_context(material, source)
    certificate = CertificateInfo.of(material)
    service = SubmissionService(settings, context, settings.hostname or certificate.greeting_name).start()
    ports = service.ports()
    log.info(
        "SMTP submission listening",
        extra={
            "api_url": settings.api_url,
            "host": settings.host,
            "starttls_port": ports["starttls"],
            "tls_port": ports["tls"],
            "greeting_name": service.handler.options.hostname,
            "tls_source": source,
            "certificate_names": list(certificate.names),
            "certificate_not_after": certificate.not_after.isoformat(),
        },
    )
    left = certificate.not_after - datetime.datetime.now(datetime.UTC)
    if left < EXPIRY_WARNING:
        # Still served: a client that does not verify keeps working, and the log says what to renew.
        log.warning("the TLS certificate expires soon or has expired", extra={"days_left": left.days})
    stop.wait()
    log.info("stopping: draining SMTP sessions", extra={"open_connections": service.handler.open_connections})
    cut = service.drain(settings.drain_seconds)
    log.info(
        "SMTP submission stopped", extra={"connections_closed_at_deadline": cut, "queued": service.handler.queued_total}
    )
    return 0


def main(env: Mapping[str, str]) -> int:
    """``postroom submission-server``: run in the foreground until SIGTERM or SIGINT."""
    configure_logging(env)
    try:
        settings = ServiceSettings.from_env(env)
    except SettingsError as error:
        log.error("invalid settings: %s", error)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        return serve(settings, stop)
    except TlsSetupError as error:
        log.error("cannot start: %s", error)
        return 1
