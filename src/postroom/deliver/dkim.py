"""DKIM signing (RFC 6376) of direct-SMTP mail with dkimpy: rsa-sha256, and ed25519-sha256 (RFC 8463) beside it.

Keys live in SSM Parameter Store (SecureString) or Secrets Manager as PKCS#8 PEM, one per ``<domain>/<selector>``,
read through Powertools Parameters and cached for ``dkim_key_cache_seconds``. ``POSTROOM_DKIM_SELECTORS`` names the
selectors that sign mail from each sending domain. The worker signs just before the SMTP hand-off
(:class:`SigningSmtpAgent` wraps the SMTP agent), so the stored MIME stays unsigned and every attempt carries a fresh
signature; SES mail is signed by SES itself (Easy DKIM or BYODKIM).

Private keys never reach a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import dkim
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postroom.core.delivery_results import Outcome, RecipientResult

if TYPE_CHECKING:
    from collections.abc import Mapping

    from postroom.core.deliverability_settings import DeliverabilitySettings
    from postroom.deliver.deliverer import SmtpAgent

__all__ = [
    "DkimAlgorithm",
    "DkimKey",
    "DkimKeyError",
    "DkimSigner",
    "ParameterKeyStore",
    "SigningSmtpAgent",
    "generate_key",
    "key_name",
    "store_private_key",
]

logger = Logger(child=True)

RSA_BITS_DEFAULT = 2048  # RFC 8301 §3.2: signers SHOULD use at least 2048 bits
RSA_BITS_MIN = 1024  # RFC 8301 §3.2: verifiers refuse keys below 1024 bits
RSA_PUBLIC_EXPONENT = 65537
STATUS_KEY_UNAVAILABLE = "4.3.5"  # RFC 3463 X.3.5 "system incorrectly configured": deferred until a key is readable

# Header fields every signature covers once more than they occur (RFC 6376 §5.4.2, §8.15): a field listed in h= but
# absent counts as empty, so nobody can add a second Subject, or a Reply-To the sender never wrote, without breaking
# the signature. List-Unsubscribe(-Post) must be signed for one-click unsubscribe (RFC 8058 §4).
OVERSIGNED = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
# RFC 6376 §5.4.1: fields that relays add or rewrite are not signed; dkimpy refuses to sign them anyway.
NOT_SIGNED = frozenset(name.decode() for name in dkim.DKIM.SHOULD_NOT)


class DkimAlgorithm(StrEnum):
    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def signature_algorithm(self) -> bytes:
        return b"rsa-sha256" if self is DkimAlgorithm.RSA else b"ed25519-sha256"


class DkimKeyError(Exception):
    """A configured key cannot be read or used. The message names the key, never its content."""


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: DkimAlgorithm
    _signing_key: bytes = field(repr=False)  # what dkimpy takes: PEM for RSA, the base64 seed for Ed25519
    public_key: bytes = field(repr=False)  # the p= value: base64 of SubjectPublicKeyInfo (RSA) or the raw key

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: str | bytes) -> DkimKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            private = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
        except (ValueError, TypeError):
            raise DkimKeyError(f"DKIM key {selector} for {domain} is not an unencrypted PEM private key") from None
        if isinstance(private, rsa.RSAPrivateKey):
            if private.key_size < RSA_BITS_MIN:
                raise DkimKeyError(f"DKIM key {selector} for {domain} has {private.key_size} bits; at least 1024")
            signing = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            public = private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return cls(domain, selector, DkimAlgorithm.RSA, signing, base64.b64encode(public))
        if isinstance(private, ed25519.Ed25519PrivateKey):
            seed = private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            # RFC 8463 §4.2: the Ed25519 public key record holds the raw 32-byte key, base64-encoded.
            return cls(domain, selector, DkimAlgorithm.ED25519, base64.b64encode(seed), base64.b64encode(public))
        raise DkimKeyError(f"DKIM key {selector} for {domain} is neither RSA nor Ed25519")

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"  # RFC 6376 §3.6.2.1

    @property
    def dns_value(self) -> str:
        """The TXT record's text (RFC 6376 §3.6.1)."""
        return f"v=DKIM1; k={self.algorithm.value}; p={self.public_key.decode()}"

    def sign(self, message: bytes, include_headers: list[bytes]) -> bytes:
        """The ``DKIM-Signature:`` header field for ``message``, CRLF-terminated."""
        try:
            signature: bytes = dkim.sign(
                message,
                self.selector.encode(),
                self.domain.encode(),
                self._signing_key,
                # relaxed/relaxed: survives the header refolding and trailing-space changes relays are known for.
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=self.algorithm.signature_algorithm,
                include_headers=include_headers,
            )
        except dkim.DKIMException as error:
            raise DkimKeyError(f"signing with {self.selector} for {self.domain} failed: {error}") from None
        return signature


def generate_key(
    domain: str, selector: str, algorithm: DkimAlgorithm, bits: int = RSA_BITS_DEFAULT
) -> tuple[DkimKey, str]:
    """A new key pair: the key, and its private half as PKCS#8 PEM (to store; never to print)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm is DkimAlgorithm.RSA:
        if bits < RSA_BITS_DEFAULT:
            raise ValueError(f"RSA keys need at least {RSA_BITS_DEFAULT} bits (RFC 8301 §3.2)")
        private = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=bits)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return DkimKey.from_pem(domain, selector, pem), pem


def key_name(source: str, prefix: str, domain: str, selector: str) -> str:
    """Where a key lives: ``/postroom/dkim/<domain>/<selector>`` in SSM, ``postroom/dkim/<domain>/<selector>`` in
    Secrets Manager (SSM names in a hierarchy start with a slash; secret names conventionally do not)."""
    name = f"{prefix.strip('/')}/{domain}/{selector}"
    return f"/{name}" if source == "ssm" else name


def store_private_key(source: str, prefix: str, key: DkimKey, pem: str) -> str:
    """Store a new key's private half where :class:`ParameterKeyStore` reads it (SSM SecureString or Secrets Manager,
    under the account's AWS managed KMS key); never overwrites - a new key gets a new selector. Returns the name."""
    from postroom.core import aws

    name = key_name(source, prefix, key.domain, key.selector)
    description = f"DKIM private key, {key.dns_name}"
    if source == "ssm":
        aws.client("ssm").put_parameter(
            Name=name, Value=pem, Type="SecureString", Overwrite=False, Description=description
        )
    else:
        aws.client("secretsmanager").create_secret(Name=name, SecretString=pem, Description=description)
    return name


class KeyStore(Protocol):
    def get(self, domain: str, selector: str) -> DkimKey: ...


class ParameterKeyStore:
    """Keys from SSM Parameter Store or Secrets Manager, through Powertools Parameters and its cache."""

    def __init__(self, provider: Any, *, source: str, prefix: str, max_age: int) -> None:
        self._provider = provider  # a Powertools SSMProvider or SecretsProvider
        self._source = source
        self._prefix = prefix
        self._max_age = max_age
        self._keys: dict[tuple[str, str, str], DkimKey] = {}  # parsed keys by (domain, selector, fetched PEM)

    @classmethod
    def create(cls, source: str, prefix: str, max_age: int) -> ParameterKeyStore:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

        from postroom.core import aws

        provider: Any
        if source == "ssm":
            provider = SSMProvider(boto3_client=aws.client("ssm"))
        else:
            provider = SecretsProvider(boto3_client=aws.client("secretsmanager"))
        return cls(provider, source=source, prefix=prefix, max_age=max_age)

    @classmethod
    def from_settings(cls, settings: DeliverabilitySettings) -> ParameterKeyStore:
        return cls.create(settings.dkim_key_source, settings.dkim_key_prefix, settings.dkim_key_cache_seconds)

    def get(self, domain: str, selector: str) -> DkimKey:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        name = key_name(self._source, self._prefix, domain, selector)
        options: dict[str, Any] = {"decrypt": True} if self._source == "ssm" else {}
        try:
            value = self._provider.get(name, max_age=self._max_age, **options)
        except GetParameterError as error:
            # Powertools' message quotes the service's error (not found, access denied); never the value.
            raise DkimKeyError(f"DKIM key {name} could not be read: {_first_line(error)}") from None
        pem = value.decode() if isinstance(value, bytes) else str(value or "")
        cached = self._keys.get((domain, selector, pem))
        if cached is None:
            # The value changes when an operator replaces a key: the parsed key is cached by its content.
            self._keys = {k: v for k, v in self._keys.items() if k[:2] != (domain, selector)}
            cached = self._keys[(domain, selector, pem)] = DkimKey.from_pem(domain, selector, pem)
        return cached


class DkimSigner:
    """Signs a message with every key configured for its From domain; unsigned when that domain has none."""

    def __init__(self, selectors: Mapping[str, tuple[str, ...]], keys: KeyStore) -> None:
        self._selectors = selectors
        self._keys = keys

    def keys_for(self, message: bytes) -> list[DkimKey]:
        domain = from_domain(message)
        return [self._keys.get(domain, selector) for selector in self._selectors.get(domain, ())] if domain else []

    def sign(self, message: bytes) -> bytes:
        keys = self.keys_for(message)
        if not keys:
            return message
        include = _headers_to_sign(message)
        # Every signature is over the unsigned message (DKIM-Signature is never itself signed, RFC 6376 §5.4.1), so
        # the order only matters to verifiers that check the topmost signature alone: RSA, which all understand,
        # goes on top; Ed25519 (RFC 8463) below it.
        ordered = sorted(keys, key=lambda key: key.algorithm is DkimAlgorithm.RSA)
        signatures = [key.sign(message, include) for key in ordered]
        return b"".join(reversed(signatures)) + message


class SigningSmtpAgent:
    """The worker's SMTP agent, signing each message just before the hand-off. A key that cannot be read defers the
    delivery (4.3.5) rather than sending mail the domain's DMARC policy would have rejected."""

    def __init__(self, agent: SmtpAgent, signer: DkimSigner) -> None:
        self._agent = agent
        self._signer = signer
        self._last: tuple[bytes, bytes] | None = None  # (unsigned, signed): one message often goes to many domains

    def deliver(self, domain: str, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]:
        if not recipients:
            return []
        try:
            signed = self._sign(message)
        except DkimKeyError as error:
            logger.error("DKIM signing failed; delivery deferred", extra={"reason": str(error), "domain": domain})
            reply = f"{STATUS_KEY_UNAVAILABLE} not sent: {error}"
            return [
                RecipientResult(recipient, Outcome.DEFERRED, reply=reply, enhanced_status=STATUS_KEY_UNAVAILABLE)
                for recipient in recipients
            ]
        return self._agent.deliver(domain, mail_from, recipients, signed)

    def _sign(self, message: bytes) -> bytes:
        if self._last is not None and self._last[0] is message:
            return self._last[1]
        signed = self._signer.sign(message)
        self._last = (message, signed)
        return signed


def from_domain(message: bytes) -> str | None:
    """The domain of the message's From address, lower-case (the d= DMARC aligns with, RFC 7489 §3.1.1)."""
    header = _header_section(message)
    values = BytesHeaderParser(policy=compat32).parsebytes(header).get_all("From") or []
    addresses = [address for _, address in getaddresses([str(value) for value in values]) if "@" in address]
    return addresses[0].rpartition("@")[2].lower().rstrip(".") if addresses else None


def _header_section(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 4]


def _headers_to_sign(message: bytes) -> list[bytes]:
    names = [name.lower() for name in BytesHeaderParser(policy=compat32).parsebytes(_header_section(message))]
    present = [name for name in names if name not in NOT_SIGNED]
    return [name.encode() for name in (*present, *OVERSIGNED)]


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
