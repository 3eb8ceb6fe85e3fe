"""MTA-STS (RFC 8461): a recipient domain's promise that its MX hosts speak TLS with trusted certificates.

Discovery (§3): a TXT record ``_mta-sts.<domain>`` = ``v=STSv1; id=<policy id>`` announces a policy, fetched over
HTTPS from ``https://mta-sts.<domain>/.well-known/mta-sts.txt``. Caching (§5.1): a policy is kept for its
``max_age``; it is fetched again only when the TXT id changes or the cached copy expires, and a cached, unexpired
policy keeps applying when the TXT record or the HTTPS endpoint is unreachable (that is what defeats an attacker who
strips them). Application (§5, §4): ``enforce`` means deliver only to MX hosts that match the policy's ``mx:``
patterns, over TLS with a certificate valid for the MX name; ``testing`` means report such failures and deliver
anyway; ``none`` means no policy.

Everything that touches the network is injected: ``txt`` (the TXT lookup), the fetcher's address resolution and its
TLS context (CA bundle), so tests run the whole protocol against a DNS and an HTTPS server on loopback.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from postroom.deliver.delivery_errors import DeliveryError

__all__ = [
    "DynamoPolicyCache",
    "LayeredPolicyCache",
    "MemoryPolicyCache",
    "MtaStsError",
    "MtaStsMode",
    "MtaStsPolicy",
    "MtaStsResolver",
    "PolicyFetcher",
    "parse_policy",
    "parse_txt",
]

logger = Logger(child=True)

HTTPS_PORT = 443
POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.2
POLICY_MAX_BYTES = 64 * 1024  # RFC 8461 §3.3: senders may limit the size of a policy they fetch (64 KB suggested)
FETCH_TIMEOUT_DEFAULT = 10.0  # seconds; §3.3 leaves the timeout to the sender, a Lambda cannot wait a minute
MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: max_age is at most 31557600 seconds (about one year)
FAILURE_BACKOFF_SECONDS = 300  # §3.3: rate-limit fetch attempts after a failure, even while the TXT record is there
ABSENT_SECONDS = 300  # how long a table miss is believed before the table is asked again

_TXT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # RFC 8461 §3.1: sts-id = 1*32(ALPHA / DIGIT)
_MX_PATTERN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}$")


class MtaStsError(Exception):
    """A policy could not be fetched or parsed (the domain is then treated per §5.1: cached policy, else none)."""


class MtaStsMode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class MtaStsPolicy:
    domain: str
    policy_id: str
    mode: MtaStsMode
    mx: tuple[str, ...]
    max_age: int
    fetched_at: float  # epoch seconds

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.max_age

    def matches(self, hostname: str) -> bool:
        """RFC 8461 §4.1: the MX host name equals a pattern, or a ``*.`` pattern's wildcard stands for exactly its
        left-most label. Case-insensitive, the trailing dot ignored."""
        host = hostname.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, dot, rest = host.partition(".")
                if label and dot and rest == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_txt(records: Sequence[bytes]) -> str | None:
    """The policy id of the one ``v=STSv1`` record, or None (RFC 8461 §3.1: records not starting with ``v=STSv1;``
    are discarded; unless exactly one remains and it is valid, the domain has no policy)."""
    candidates = [record.decode("ascii", "replace") for record in records if record.startswith(b"v=STSv1;")]
    if len(candidates) != 1:
        return None
    fields: dict[str, str] = {}
    for term in candidates[0].split(";"):
        name, equals, value = term.strip().partition("=")
        if equals:
            fields.setdefault(name.strip(), value.strip())
    policy_id = fields.get("id", "")
    return policy_id if _TXT_ID.match(policy_id) else None


def parse_policy(domain: str, policy_id: str, text: str, fetched_at: float) -> MtaStsPolicy:
    """RFC 8461 §3.2: ``key: value`` lines (CRLF, LF accepted); unknown keys ignored; ``mx`` may repeat."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if not colon:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "mx":
            pattern = value.lower().rstrip(".")
            if not _MX_PATTERN.match(pattern):
                raise MtaStsError(f"policy for {domain}: invalid mx pattern {value[:100]!r}")
            mx.append(pattern)
        else:
            values.setdefault(key, value)
    if values.get("version") != "STSv1":
        raise MtaStsError(f"policy for {domain}: version must be STSv1, not {values.get('version', '')[:20]!r}")
    try:
        mode = MtaStsMode(values.get("mode", ""))
    except ValueError:
        raise MtaStsError(f"policy for {domain}: mode must be enforce, testing or none") from None
    max_age_text = values.get("max_age", "")
    if not max_age_text.isdigit() or len(max_age_text) > 10 or int(max_age_text) > MAX_AGE_LIMIT:
        raise MtaStsError(f"policy for {domain}: max_age must be 0 to {MAX_AGE_LIMIT} seconds")
    if mode is not MtaStsMode.NONE and not mx:
        raise MtaStsError(f"policy for {domain}: mode {mode} needs at least one mx pattern")
    return MtaStsPolicy(domain, policy_id, mode, tuple(mx), int(max_age_text), fetched_at)


# -- fetching ----------------------------------------------------------------------------------------------------------


class _AddressedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one chosen address, with SNI and certificate checks for the host name (resolution is ours)."""

    def __init__(self, host: str, address: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class PolicyFetcher:
    """Fetches ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (RFC 8461 §3.3)."""

    def __init__(
        self,
        resolve: Callable[[str], Sequence[str]],
        *,
        context: ssl.SSLContext | None = None,
        port: int = HTTPS_PORT,
        timeout: float = FETCH_TIMEOUT_DEFAULT,
    ) -> None:
        self._resolve = resolve  # host name → addresses (the worker's DNS resolver)
        # §3.3: the certificate must be valid for mta-sts.<domain> and chain to a trusted root (hostname checked).
        self._context = context or ssl.create_default_context()
        self._port = port
        self._timeout = timeout

    def fetch(self, domain: str) -> str:
        host = f"mta-sts.{domain}"
        try:
            addresses = self._resolve(host)
        except DeliveryError as error:
            raise MtaStsError(f"{host}: {error.message}") from None
        failures: list[str] = []
        for address in addresses:
            try:
                return self._get(host, address)
            except MtaStsError:
                raise
            except ssl.SSLCertVerificationError as error:
                failures.append(f"{address}: certificate not trusted: {error.verify_message}")
            except (OSError, http.client.HTTPException) as error:
                failures.append(f"{address}: {error or type(error).__name__}")
        raise MtaStsError(f"{host}: " + ("; ".join(failures) or "no address"))

    def _get(self, host: str, address: str) -> str:
        connection = _AddressedHTTPSConnection(host, address, self._port, self._context, self._timeout)
        try:
            connection.request("GET", POLICY_PATH, headers={"Accept": "text/plain", "User-Agent": "Postroom"})
            response = connection.getresponse()
            # §3.3: "HTTP 3xx redirects MUST NOT be followed"; only a 200 carries a policy.
            if response.status != http.HTTPStatus.OK:
                raise MtaStsError(f"{host} answered HTTP {response.status} {response.reason}")
            # §3.3: senders SHOULD check the media type, so a user-uploaded file on the web server is not a policy.
            if response.headers.get_content_type() != "text/plain":
                raise MtaStsError(f"{host} served {response.headers.get_content_type()}, not text/plain")
            body = response.read(POLICY_MAX_BYTES + 1)
            if len(body) > POLICY_MAX_BYTES:
                raise MtaStsError(f"{host}: the policy is larger than {POLICY_MAX_BYTES} bytes")
            return body.decode("utf-8", "replace")
        finally:
            connection.close()


# -- caching -----------------------------------------------------------------------------------------------------------


class PolicyCache(Protocol):
    def get(self, domain: str) -> MtaStsPolicy | None: ...

    def put(self, policy: MtaStsPolicy) -> None: ...


class MemoryPolicyCache:
    """Per execution environment: saves the table read for every message to a domain."""

    def __init__(self) -> None:
        self._policies: dict[str, MtaStsPolicy] = {}
        self._lock = threading.Lock()

    def get(self, domain: str) -> MtaStsPolicy | None:
        with self._lock:
            return self._policies.get(domain)

    def put(self, policy: MtaStsPolicy) -> None:
        with self._lock:
            self._policies[policy.domain] = policy


class DynamoPolicyCache:
    """In the single table, so a policy outlives the short lives of Lambda environments (§5.1's protection only
    works if the cache does). Item ``pk=MTASTS#<domain>``, ``sk=POLICY``; ``expires_at`` lets DynamoDB's TTL delete
    it once its max_age has passed."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def get(self, domain: str) -> MtaStsPolicy | None:
        from postroom.core.dynamo import from_item, to_item

        response = self._ddb.get_item(TableName=self._table, Key=to_item({"pk": f"MTASTS#{domain}", "sk": "POLICY"}))
        if "Item" not in response:
            return None
        item = from_item(response["Item"])
        try:
            return MtaStsPolicy(
                domain=domain,
                policy_id=str(item["policy_id"]),
                mode=MtaStsMode(item["mode"]),
                mx=tuple(str(pattern) for pattern in item.get("mx", [])),
                max_age=int(item["max_age"]),
                fetched_at=float(item["fetched_at"]),
            )
        except (KeyError, ValueError):
            return None  # an item from an older layout: fetch again

    def put(self, policy: MtaStsPolicy) -> None:
        from decimal import Decimal

        from postroom.core.dynamo import to_item

        item = {
            "pk": f"MTASTS#{policy.domain}",
            "sk": "POLICY",
            "policy_id": policy.policy_id,
            "mode": policy.mode.value,
            "mx": list(policy.mx),
            "max_age": policy.max_age,
            "fetched_at": Decimal(str(round(policy.fetched_at, 3))),
            "expires_at": int(policy.expires_at) + 1,
        }
        self._ddb.put_item(TableName=self._table, Item=to_item(item))


class LayeredPolicyCache:
    """Memory in front of the table; a failing table read or write never stops a delivery.

    Most domains publish no policy, yet each must be looked up (a policy cached by another worker still applies when
    the TXT record has been stripped), so a miss in the table is remembered for ``absent_seconds``: one read per
    domain and execution environment in that time, not one per message."""

    def __init__(
        self,
        memory: MemoryPolicyCache,
        durable: PolicyCache,
        *,
        absent_seconds: float = ABSENT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._memory = memory
        self._durable = durable
        self._absent_seconds = absent_seconds
        self._clock = clock
        self._absent: dict[str, float] = {}  # domain → until when the table is known to hold nothing for it
        self._lock = threading.Lock()

    def get(self, domain: str) -> MtaStsPolicy | None:
        policy = self._memory.get(domain)
        if policy is not None:
            return policy
        with self._lock:
            if self._absent.get(domain, 0.0) > self._clock():
                return None
        try:
            policy = self._durable.get(domain)
        except Exception as error:  # noqa: BLE001 - the cache is an optimisation and a safeguard, never a failure
            logger.warning("MTA-STS cache read failed", extra={"domain": domain, "error": str(error)})
            return None
        if policy is not None:
            self._memory.put(policy)
        else:
            with self._lock:
                self._absent[domain] = self._clock() + self._absent_seconds
        return policy

    def put(self, policy: MtaStsPolicy) -> None:
        self._memory.put(policy)
        with self._lock:
            self._absent.pop(policy.domain, None)
        try:
            self._durable.put(policy)
        except Exception as error:  # noqa: BLE001
            logger.warning("MTA-STS cache write failed", extra={"domain": policy.domain, "error": str(error)})


# -- resolving ---------------------------------------------------------------------------------------------------------


class MtaStsResolver:
    """The MTA-STS policy that applies to a domain now, or None; never raises for network trouble (§5.1)."""

    def __init__(
        self,
        txt: Callable[[str], Sequence[bytes]],
        fetcher: PolicyFetcher,
        cache: PolicyCache,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._txt = txt
        self._fetcher = fetcher
        self._cache = cache
        self._clock = clock
        self._failures: dict[tuple[str, str], float] = {}  # (domain, policy id) → no new fetch before this time
        self._lock = threading.Lock()

    def policy(self, domain: str) -> MtaStsPolicy | None:
        domain = domain.lower().rstrip(".")
        now = self._clock()
        cached = self._cache.get(domain)
        if cached is not None and cached.expires_at <= now:
            cached = None
        try:
            policy_id = parse_txt(self._txt(f"_mta-sts.{domain}"))
        except DeliveryError:
            policy_id = None  # DNS trouble: whatever is cached still applies
        if policy_id is None or (cached is not None and cached.policy_id == policy_id):
            # §5.1: no (valid) TXT record, or the same id: the cached policy, if unexpired, still holds.
            return _effective(cached)
        with self._lock:
            if self._failures.get((domain, policy_id), 0.0) > now:
                return _effective(cached)
        try:
            text = self._fetcher.fetch(domain)
            policy = parse_policy(domain, policy_id, text, now)
        except MtaStsError as error:
            with self._lock:
                self._failures[(domain, policy_id)] = now + FAILURE_BACKOFF_SECONDS
            logger.warning(
                "MTA-STS policy fetch failed",
                extra={"domain": domain, "policy_id": policy_id, "error": str(error), "cached": cached is not None},
            )
            return _effective(cached)
        self._cache.put(policy)
        logger.info("MTA-STS policy fetched", extra={"domain": domain, "mode": policy.mode.value, "id": policy_id})
        return _effective(policy)


def _effective(policy: MtaStsPolicy | None) -> MtaStsPolicy | None:
    return None if policy is None or policy.mode is MtaStsMode.NONE else policy
