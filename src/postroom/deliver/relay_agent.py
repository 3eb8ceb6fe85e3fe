"""Smart-host relay: mail leaves through an upstream provider's SMTP (Google Workspace, Microsoft 365, a corporate
relay) instead of the recipients' MX hosts.

The upstream is one fixed host; everything after the connection — STARTTLS, per-recipient RCPT results, DATA, 4xx/5xx
handling, session reuse — is the direct-SMTP agent's, so relayed and direct mail behave the same. What the relay adds
is authentication after TLS: ``AUTH PLAIN`` with a password, or ``AUTH XOAUTH2`` with an OAuth 2.0 access token
refreshed from a stored refresh token (what Gmail and Microsoft 365 require now). A refused login defers the
message (``4.7.0``): it is retried with backoff, never lost, and the token is refreshed before the next try.

Secrets come from SSM Parameter Store (a name starting with ``/``, SecureString) or Secrets Manager (anything else),
as JSON, through Powertools Parameters with a 5-minute cache; they are never logged.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postroom.deliver.mx import MxHost
from postroom.deliver.smtp_agent import SmtpDeliveryAgent, SmtpOptions, _Session, _SetupError

STATUS_AUTH_FAILED = "4.7.0"  # RFC 3463: security or policy status, temporary: log in again later
TOKEN_MARGIN_SECONDS = 60  # refresh an access token this long before it expires


class RelayConfigError(ValueError):
    """The relay settings or its secret are incomplete; the message names what is missing."""


@dataclass(frozen=True)
class RelayCredentials:
    username: str
    password: str | None = None  # AUTH PLAIN
    token_url: str | None = None  # AUTH XOAUTH2: the provider's OAuth 2.0 token endpoint
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None

    def __repr__(self) -> str:  # keeps secrets out of logs and tracebacks
        return f"RelayCredentials(username={self.username!r}, ...)"

    @classmethod
    def from_secret(cls, data: dict[str, Any], auth: str) -> RelayCredentials:
        needed = (
            ("username", "password") if auth == "plain" else ("username", "token_url", "client_id", "refresh_token")
        )
        missing = [name for name in needed if not data.get(name)]
        if missing:
            raise RelayConfigError(f"the relay secret lacks {', '.join(missing)} for AUTH {auth.upper()}")
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__})


class OAuthTokenSource:
    """OAuth 2.0 refresh-token grant (RFC 6749 §6), cached until shortly before the access token expires."""

    def __init__(self, credentials: RelayCredentials, *, timeout: float = 10.0) -> None:
        self._credentials = credentials
        self._timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def access_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._refresh()
                self._expires = time.monotonic() + max(0, lifetime - TOKEN_MARGIN_SECONDS)
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _refresh(self) -> tuple[str, int]:
        creds = self._credentials
        form = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token, "client_id": creds.client_id}
        if creds.client_secret:
            form["client_secret"] = creds.client_secret
        request = urllib.request.Request(  # noqa: S310 - the operator's configured token endpoint
            str(creds.token_url),
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body = json.loads(response.read())
        except (OSError, ValueError) as error:
            raise _SetupError(STATUS_AUTH_FAILED, f"could not refresh the OAuth access token: {error}") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise _SetupError(STATUS_AUTH_FAILED, "the token endpoint answered without an access_token")
        return str(token), int(body.get("expires_in", 3600))


def xoauth2_string(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (Google's and Microsoft's documented format), not yet base64-encoded."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


class StaticRelayResolver:
    """Stands in for MX resolution: every domain's mail goes to the one upstream host."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port

    def resolve(self, domain: str) -> list[MxHost]:
        try:
            infos = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except OSError as error:
            from postroom.deliver.delivery_errors import DnsTemporaryError

            raise DnsTemporaryError(f"cannot resolve the relay host {self._host}: {error}") from None
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        return [MxHost(preference=0, hostname=self._host, addresses=addresses)]


class RelayDeliveryAgent(SmtpDeliveryAgent):
    """The direct-SMTP agent pointed at a smart host, logging in after STARTTLS (TLS is mandatory for a relay)."""

    def __init__(
        self,
        host: str,
        options: SmtpOptions,
        *,
        auth: str,
        credentials: Callable[[], RelayCredentials] | None,
        ca_file: str | None = None,
    ) -> None:
        if auth not in ("plain", "xoauth2", "none"):
            raise RelayConfigError(f"relay auth must be plain, xoauth2 or none, not {auth!r}")
        super().__init__(StaticRelayResolver(host, options.port), options)  # type: ignore[arg-type]
        self._auth = auth
        self._credentials = credentials
        self._tokens: OAuthTokenSource | None = None
        if ca_file and options.tls_verify:
            import ssl

            # A relay with a private CA: verify against that bundle instead of the system's.
            self._tls_context = ssl.create_default_context(cafile=ca_file)

    def _open(self, host: MxHost, address: str) -> _Session:
        session = super()._open(host, address)
        if self._auth == "none":
            return session
        try:
            self._login(session)
        except _SetupError:
            session.client.close()
            raise
        return session

    def _login(self, session: _Session) -> None:
        import smtplib

        if self._credentials is None:
            raise _SetupError(STATUS_AUTH_FAILED, "relay credentials are not configured")
        try:
            creds = self._credentials()
        except Exception as error:  # noqa: BLE001 - any unusable secret (missing, not JSON, incomplete) waits for an operator
            raise _SetupError(STATUS_AUTH_FAILED, f"relay credentials unusable: {error}") from None
        client = session.client
        try:
            if self._auth == "plain":
                client.login(creds.username, str(creds.password))
                return
            if self._tokens is None:
                self._tokens = OAuthTokenSource(creds)
            initial = xoauth2_string(creds.username, self._tokens.access_token())
            # XOAUTH2 failure: the server sends a 334 with a JSON error; the client answers with an empty line and
            # gets the final 535 (Google's protocol notes). smtplib calls the object again for each challenge.
            client.auth(
                "XOAUTH2", lambda challenge=None: initial if challenge is None else "", initial_response_ok=True
            )
        except smtplib.SMTPAuthenticationError as error:
            if self._tokens is not None:
                self._tokens.invalidate()  # a revoked or expired token: fetch a fresh one before the retry
            detail = error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else error
            raise _SetupError(STATUS_AUTH_FAILED, f"login refused: {error.smtp_code} {detail}") from None
        except smtplib.SMTPException as error:
            raise _SetupError(STATUS_AUTH_FAILED, f"login failed: {error}") from None


def secret_loader(name: str, auth: str) -> Callable[[], RelayCredentials]:
    """Credentials from SSM (``/path``, SecureString) or Secrets Manager, cached 5 minutes by Powertools."""

    from aws_lambda_powertools.utilities import parameters

    from postroom.core import aws

    # Providers bound to this process's clients (Powertools' module-level default providers keep the first endpoint
    # they were created with); each caches the secret for 5 minutes.
    in_ssm = name.startswith("/")
    provider = (
        parameters.SSMProvider(boto3_client=aws.client("ssm"))
        if in_ssm
        else parameters.SecretsProvider(boto3_client=aws.client("secretsmanager"))
    )

    def load() -> RelayCredentials:
        raw = provider.get(name, decrypt=True, max_age=300) if in_ssm else provider.get(name, max_age=300)
        # Without a transform the providers return the stored string (or a SecretBinary's bytes); their signature also
        # admits the dicts and None of other modes.
        if not isinstance(raw, str | bytes):
            raise RelayConfigError(f"the relay secret {name} is not a string")
        try:
            data = json.loads(raw if isinstance(raw, str) else base64.b64decode(raw))
        except ValueError:
            raise RelayConfigError(f"the relay secret {name} is not JSON") from None
        return RelayCredentials.from_secret(data, auth)

    return load
