"""Direct SMTP delivery to a recipient domain's MX hosts (RFC 5321), spoken with the standard library's smtplib.

One agent serves one worker batch. It resolves the domain's MX hosts, tries them in preference order until one takes a
session, runs one transaction per message and keeps the session open, keyed by MX address and name, so that the next
message to any domain hosted on the same MX reuses the TCP connection (and its TLS handshake). Every problem becomes a
per-recipient DEFERRED or BOUNCED result with a human-readable reply; ``deliver`` does not raise for delivery problems.

TLS follows the recipient domain's policy (``postroom.deliver.tls_policy``): opportunistic, required or
verify, raised by the domain's MTA-STS policy. Every STARTTLS first tries to verify the certificate against the MX host
name, so each result records whether it verified; where the policy accepts an unverified certificate, a failed check
costs one more connection that takes any certificate (RFC 7435: unverified encryption beats plain text), and under
the opportunistic policy a handshake that fails outright costs one more that goes without TLS.
"""

from __future__ import annotations

import functools
import smtplib
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from aws_lambda_powertools import Logger

from postroom.core.deliverability_settings import TlsLevel
from postroom.core.delivery_results import Outcome, RecipientResult, SmtpReply
from postroom.deliver.delivery_errors import DeliveryError, PermanentDeliveryError
from postroom.deliver.tls_policy import DomainTlsPolicy, StaticTlsPolicies

if TYPE_CHECKING:
    from postroom.deliver.mx import MxHost, MxResolver
    from postroom.deliver.tls_policy import TlsPolicies

__all__ = ["SmtpDeliveryAgent", "SmtpOptions"]

logger = Logger(child=True)

SMTP_PORT = 25
SMTP_TIMEOUT_DEFAULT = 30.0  # seconds per socket operation; RFC 5321 §4.5.3.2 allows minutes, a Lambda has less
MAX_TRANSACTIONS_DEFAULT = 100  # messages per cached session before it is closed with QUIT

REPLY_READY = 220  # RFC 5321 §3.1: the greeting of a server willing to talk
REPLY_OK = 250
REPLY_CLOSING = 421  # RFC 5321 §3.8: "service not available, closing transmission channel", at any point

# RFC 3463 enhanced status codes for the failures we diagnose ourselves (no server reply to quote).
STATUS_NO_CONNECTION = "4.4.1"  # no answer from host
STATUS_CONNECTION_LOST = "4.4.2"  # bad connection
STATUS_TLS_UNAVAILABLE = "4.7.4"  # security features not supported
STATUS_TLS_FAILED = "4.7.5"  # cryptographic failure
STATUS_NOT_ASCII = "5.6.7"  # RFC 6531: non-ASCII addresses not permitted for that sender/recipient
STATUS_POLICY = "4.7.0"  # other security or policy status: no MX host is allowed by the domain's MTA-STS policy


class _MxClient(smtplib.SMTP):
    """smtplib's client with a settable TLS server name.

    ``starttls()`` hands ``self._host`` (the host given to ``connect()``) to the handshake as ``server_hostname``: SNI
    and the name the certificate is checked against. The agent connects to an address, so it sets the MX name here;
    smtplib has no public way to, and this keeps the reach into its attribute in one declared, typed place.
    """

    _host: str

    @property
    def tls_server_name(self) -> str:
        return self._host

    @tls_server_name.setter
    def tls_server_name(self, name: str) -> None:
        self._host = name


@dataclass(frozen=True, kw_only=True)
class SmtpOptions:
    helo_name: str
    port: int = SMTP_PORT  # every MX address is reached on this port; tests and the local stack use a high one
    timeout: float = SMTP_TIMEOUT_DEFAULT
    tls_verify: bool = False  # opportunistic STARTTLS, certificates unchecked: what MTAs do by default (RFC 7435)
    require_tls: bool = False
    # Trust anchors for MX certificates (PEM); None: the system's. Without a TLS policy given to the agent,
    # tls_verify and require_tls set the level for every domain.
    ca_file: str | None = None
    max_transactions_per_connection: int = MAX_TRANSACTIONS_DEFAULT


@dataclass(frozen=True)
class _Mail:
    """One message on its way to one domain."""

    sender: str
    recipients: tuple[str, ...]
    message: bytes

    @property
    def wire_sender(self) -> str:
        return _wire_address(self.sender)

    @property
    def wire_recipients(self) -> tuple[str, ...]:
        return tuple(_wire_address(recipient) for recipient in self.recipients)

    @property
    def needs_smtputf8(self) -> bool:
        return not all(address.isascii() for address in (self.wire_sender, *self.wire_recipients))


class _SetupError(Exception):
    """This MX address did not give us a usable session; the next one may."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _StaleSessionError(Exception):
    """A cached session turned out to be closed by the server before our MAIL FROM."""


class _UnverifiedCertificateError(Exception):
    """The certificate did not verify, and the policy would take it unverified: connect again without the check."""


class _BrokenTlsError(Exception):
    """The TLS handshake failed (not over the certificate) and the policy is opportunistic: connect again in plain."""


class _TlsHandshakeError(Exception):
    """STARTTLS was accepted but no working TLS session came of it."""


@dataclass(eq=False)
class _Session:
    """One open SMTP session to one MX address, ready for MAIL FROM."""

    client: smtplib.SMTP
    address: str
    port: int
    tls_version: str | None
    tls_verified: bool | None  # the certificate verified for the MX name; None without TLS
    policy: DomainTlsPolicy
    transactions: int = 0
    broken: bool = False  # the server said 421 or the connection went away: never reuse
    open_transaction: bool = False  # MAIL was sent and no reply to the end of data has closed the transaction yet

    def satisfies(self, level: TlsLevel) -> bool:
        if level is TlsLevel.VERIFY:
            return self.tls_verified is True
        return level is TlsLevel.OPPORTUNISTIC or self.tls_version is not None

    def _tls(self) -> dict[str, object]:
        return {
            "tls": self.tls_version is not None,
            "tls_version": self.tls_version,
            "tls_verified": self.tls_verified,
            "tls_policy": self.policy.label,
        }

    def result(self, recipient: str, reply: SmtpReply, mx_host: str) -> RecipientResult:
        return RecipientResult.from_reply(
            recipient,
            _outcome(reply),
            reply,
            mx_host=mx_host,
            **self._tls(),
        )

    def diagnostic(self, recipient: str, outcome: Outcome, status: str, text: str, mx_host: str) -> RecipientResult:
        return RecipientResult(
            recipient,
            outcome,
            reply=f"{status} {text}",
            enhanced_status=status,
            mx_host=mx_host,
            **self._tls(),  # type: ignore[arg-type]
        )

    def quit(self) -> None:
        _quit_quietly(self.client)


class SmtpDeliveryAgent:
    def __init__(self, resolver: MxResolver, options: SmtpOptions, tls_policies: TlsPolicies | None = None) -> None:
        self._resolver = resolver
        self._options = options
        if tls_policies is None:
            default = TlsLevel.OPPORTUNISTIC
            if options.tls_verify:
                default = TlsLevel.VERIFY
            elif options.require_tls:
                default = TlsLevel.REQUIRED
            tls_policies = StaticTlsPolicies(default=default)
        self._policies = tls_policies
        # The policy of the delivery in progress, read by _open(): subclasses (the relay agent) override
        # _open(host, address), so the policy does not travel as an argument.
        self._policy = DomainTlsPolicy(TlsLevel.OPPORTUNISTIC)  # replaced before every _open()
        # _tls_context verifies certificates (a subclass may swap in one with its own trust anchors); the other
        # takes any certificate, for policies that accept an unverified session.
        self._tls_context = _client_tls_context(verify=True, ca_file=options.ca_file)
        self._any_certificate_context = _client_tls_context(verify=False)
        self._sessions: dict[tuple[str, int, str], _Session] = {}
        # MX hosts per domain for this agent's life (one worker batch, at most the function timeout): a batch of
        # messages to one domain resolves it once instead of once per message.
        self._hosts: dict[str, list[MxHost]] = {}

    def deliver(self, domain: str, mail_from: str, recipients: list[str], message: bytes) -> list[RecipientResult]:
        """One result per recipient, in order. All recipients must be at ``domain``."""
        if not recipients:
            return []
        try:
            hosts = self._hosts.get(domain.lower())
            if hosts is None:
                hosts = self._hosts[domain.lower()] = self._resolver.resolve(domain)
        except DeliveryError as error:
            outcome = Outcome.BOUNCED if isinstance(error, PermanentDeliveryError) else Outcome.DEFERRED
            return [
                RecipientResult(recipient, outcome, reply=str(error), enhanced_status=error.enhanced_status)
                for recipient in recipients
            ]
        mail = _Mail(mail_from, tuple(recipients), message)
        policy = self._policies.policy_for(domain)
        if policy.enforced_mx:
            # RFC 8461 §4.1 and §5: with an enforce policy, an MX host the policy does not name is never used.
            allowed = [host for host in hosts if policy.allows_mx(host.hostname)]
            if not allowed:
                names = ", ".join(host.hostname for host in hosts)
                text = f"no MX host of {domain} ({names}) matches its MTA-STS policy"
                return _refused_by_policy(mail, policy, text)
            hosts = allowed
        failures: list[tuple[str, _SetupError]] = []
        # RFC 5321 §5.1: try the MX hosts in preference order, each of a host's addresses in turn, until one answers.
        for host in hosts:
            for address in host.addresses:
                try:
                    results = self._deliver_at(host, address, mail, policy)
                except _SetupError as error:
                    failures.append((f"{host.hostname} ({_endpoint(address, self._options.port)})", error))
                else:
                    _report_testing_policy(domain, policy, host.hostname, results)
                    return results
        return _unreachable(domain, mail, failures, policy)

    def size_limit(self, domain: str) -> int | None:
        """The message size the domain's first reachable MX advertises (RFC 1870 ``SIZE``), or None when it gives
        none or cannot be reached now (the delivery then finds out and reports as usual). The session stays cached,
        so the delivery that follows reuses it instead of connecting again."""
        try:
            hosts = self._hosts.get(domain.lower())
            if hosts is None:
                hosts = self._hosts[domain.lower()] = self._resolver.resolve(domain)
        except DeliveryError:
            return None
        policy = self._policies.policy_for(domain)
        for host in hosts:
            if policy.enforced_mx and not policy.allows_mx(host.hostname):
                continue
            for address in host.addresses:
                key = (address, self._options.port, host.hostname)
                session = self._sessions.get(key)
                if session is None or not session.satisfies(policy.level):
                    if session is not None:
                        self._sessions.pop(key).quit()
                    self._policy = policy
                    try:
                        session = self._open(host, address)
                    except _SetupError:
                        continue
                    self._sessions[key] = session  # no transaction yet: _deliver_at takes it from the cache
                advertised = session.client.esmtp_features.get("size", "").strip()
                return int(advertised) if advertised.isdigit() and int(advertised) > 0 else None
        return None

    def close(self) -> None:
        """End every cached session with QUIT."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.quit()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- sessions --------------------------------------------------------------------------------------------------

    def _deliver_at(self, host: MxHost, address: str, mail: _Mail, policy: DomainTlsPolicy) -> list[RecipientResult]:
        # Sessions are shared by MX address and name: the name is the one the certificate was checked for.
        key = (address, self._options.port, host.hostname)
        session = self._sessions.pop(key, None)
        if session is not None and not session.satisfies(policy.level):
            session.quit()  # opened for a laxer policy (e.g. no STARTTLS offered): this domain needs a new one
            session = None
        if session is not None:
            session.policy = policy  # the results of this transaction report the policy they were delivered under
            try:
                results = self._transaction(session, host.hostname, mail, reused=True)
            except _StaleSessionError:
                session.client.close()  # the server hung up while the session sat in the cache: open a new one
            else:
                self._release(key, session)
                return results
        self._policy = policy
        session = self._open(host, address)
        results = self._transaction(session, host.hostname, mail, reused=False)
        self._release(key, session)
        return results

    def _open(self, host: MxHost, address: str) -> _Session:
        """A session that meets the current delivery's policy: STARTTLS with the certificate checked first; where the
        policy takes an unverified certificate and the check failed, a second connection that takes any certificate."""
        policy = self._policy
        try:
            try:
                return self._connect(host, address, policy, verify=True)
            except _UnverifiedCertificateError:
                return self._connect(host, address, policy, verify=False)
        except _BrokenTlsError:
            # Opportunistic only: a server whose TLS handshake fails still gets the mail, in plain text (RFC 7435 §3:
            # encryption when possible, never a reason not to deliver; Postfix's "may" level does the same).
            return self._connect(host, address, policy, verify=False, starttls=False)

    def _connect(
        self, host: MxHost, address: str, policy: DomainTlsPolicy, *, verify: bool, starttls: bool = True
    ) -> _Session:
        """Connect, read the greeting, EHLO and STARTTLS; raises _SetupError for anything short of a usable session."""
        options = self._options
        client = _MxClient(local_hostname=options.helo_name, timeout=options.timeout)
        try:
            code, text = client.connect(address, options.port)
            if code != REPLY_READY:
                # RFC 5321 §3.1: a 554 (or 421) greeting refuses the session; smtplib.connect() leaves that to us.
                raise _SetupError(STATUS_NO_CONNECTION, f"greeting was {_reply(code, text)}")
            _hello(client)
            tls_version = self._starttls(client, host, policy, verify=verify) if starttls else None
        except _SetupError:
            _quit_quietly(client)
            raise
        except ssl.SSLCertVerificationError as error:
            client.close()
            if policy.level is not TlsLevel.VERIFY:
                raise _UnverifiedCertificateError from None
            raise _SetupError(
                STATUS_TLS_FAILED, f"TLS certificate not trusted for {host.hostname}: {error.verify_message}"
            ) from None
        except _TlsHandshakeError as error:
            client.close()
            if policy.level is TlsLevel.OPPORTUNISTIC:
                raise _BrokenTlsError from None
            raise _SetupError(STATUS_TLS_FAILED, f"TLS handshake failed: {error}") from None
        except ssl.SSLError as error:
            client.close()
            raise _SetupError(STATUS_TLS_FAILED, f"TLS handshake failed: {error.reason or error}") from None
        except smtplib.SMTPServerDisconnected as error:
            client.close()
            raise _SetupError(STATUS_CONNECTION_LOST, f"connection lost: {error}") from None
        except OSError as error:  # refused, unreachable, timed out
            client.close()
            raise _SetupError(STATUS_NO_CONNECTION, str(error) or type(error).__name__) from None
        verified = None if tls_version is None else verify
        return _Session(client, address, options.port, tls_version, verified, policy)

    def _starttls(self, client: _MxClient, host: MxHost, policy: DomainTlsPolicy, *, verify: bool) -> str | None:
        required = policy.level is not TlsLevel.OPPORTUNISTIC
        if not client.has_extn("starttls"):
            if required:
                raise _SetupError(
                    STATUS_TLS_UNAVAILABLE, f"TLS is required ({policy.label}), but the server does not offer STARTTLS"
                )
            return None
        # We connected to an address, but the handshake must present (and verify) the MX name.
        client.tls_server_name = host.hostname
        try:
            client.starttls(context=self._tls_context if verify else self._any_certificate_context)
        except smtplib.SMTPResponseException as error:
            # RFC 3207 §4: e.g. "454 TLS not available due to temporary reason"; the session goes on in plain text.
            if required:
                raise _SetupError(
                    STATUS_TLS_UNAVAILABLE,
                    f"TLS is required, but STARTTLS got {_reply(error.smtp_code, error.smtp_error)}",
                ) from None
            return None
        except ssl.SSLCertVerificationError:
            raise
        except (ssl.SSLError, smtplib.SMTPServerDisconnected) as error:
            raise _TlsHandshakeError(getattr(error, "reason", None) or str(error) or type(error).__name__) from None
        try:
            # RFC 3207 §4.2: forget what the server said before TLS and ask again.
            _hello(client)
        except (ssl.SSLError, smtplib.SMTPServerDisconnected) as error:
            # With TLS 1.3 a server that refuses the handshake (say, for want of a client certificate) says so only
            # at the first read after it.
            raise _TlsHandshakeError(getattr(error, "reason", None) or str(error) or type(error).__name__) from None
        sock = client.sock
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def _release(self, key: tuple[str, int, str], session: _Session) -> None:
        """Cache the session for the next message, or end it."""
        session.transactions += 1
        if session.broken:
            session.client.close()
            return
        if session.transactions >= self._options.max_transactions_per_connection:
            session.quit()
            return
        if not session.open_transaction:
            # RFC 5321 §4.1.1.4: the reply to the end of data completes the transaction and clears its state, so the
            # session is ready for the next MAIL without an RSET round trip; a server that has meanwhile hung up is
            # noticed at that MAIL (see _StaleSessionError).
            self._sessions[key] = session
            return
        try:
            # RFC 5321 §4.1.1.5: RSET discards whatever transaction state is left; its 250 also shows the session is
            # still alive.
            code, _ = session.client.rset()
        except OSError:
            session.client.close()
            return
        if code != REPLY_OK:
            session.quit()
            return
        self._sessions[key] = session

    # -- the transaction -------------------------------------------------------------------------------------------

    def _transaction(self, session: _Session, mx_host: str, mail: _Mail, *, reused: bool) -> list[RecipientResult]:
        """MAIL, RCPT per recipient, DATA. Raises _StaleSessionError if a reused session is already gone at MAIL."""
        client = session.client
        results: dict[int, RecipientResult] = {}  # recipient index -> final answer
        if mail.needs_smtputf8 and not client.has_extn("smtputf8"):
            # RFC 6531 §3.4: non-ASCII addresses need the server's SMTPUTF8 extension.
            text = f"{mx_host} does not support SMTPUTF8, needed for a non-ASCII address"
            return [session.diagnostic(r, Outcome.BOUNCED, STATUS_NOT_ASCII, text, mx_host) for r in mail.recipients]

        stage = "MAIL FROM"
        session.open_transaction = True
        try:
            reply = _reply(*client.mail(mail.wire_sender, self._mail_options(client, mail)))
            if reused and reply.code == REPLY_CLOSING:  # the server timed the idle session out
                raise _StaleSessionError(str(reply))
            if not _positive(reply):
                session.broken = reply.code == REPLY_CLOSING
                return [session.result(recipient, reply, mx_host) for recipient in mail.recipients]

            accepted: list[int] = []
            for index, wire_recipient in enumerate(mail.wire_recipients):
                stage = "RCPT TO"
                reply = _reply(*client.rcpt(wire_recipient))
                if reply.code == REPLY_CLOSING:  # the transaction ends here; nothing was delivered
                    session.broken = True
                    return [
                        results.get(i) or session.result(recipient, reply, mx_host)
                        for i, recipient in enumerate(mail.recipients)
                    ]
                if _positive(reply):
                    accepted.append(index)
                else:  # 4xx: DEFERRED, 5xx: BOUNCED, for this recipient only
                    results[index] = session.result(mail.recipients[index], reply, mx_host)

            if accepted:
                stage = "DATA"
                try:
                    # smtplib does the dot-stuffing (RFC 5321 §4.5.2) and sends the final "." line.
                    reply = _reply(*client.data(mail.message))
                    session.open_transaction = False
                except smtplib.SMTPDataError as error:  # DATA itself refused, no 354
                    reply = _reply(error.smtp_code, error.smtp_error)
                session.broken = reply.code == REPLY_CLOSING
                # RFC 5321 §6.1: only the 2xx reply to the end of data makes the server responsible for the message.
                for index in accepted:
                    results[index] = session.result(mail.recipients[index], reply, mx_host)
        except smtplib.SMTPServerDisconnected as error:  # also what smtplib makes of timeouts and resets
            if reused and stage == "MAIL FROM":
                raise _StaleSessionError(str(error)) from None
            session.broken = True
            text = f"connection to {mx_host} ({_endpoint(session.address, session.port)}) lost at {stage}: {error}"
            return [
                results.get(i) or session.diagnostic(recipient, Outcome.DEFERRED, STATUS_CONNECTION_LOST, text, mx_host)
                for i, recipient in enumerate(mail.recipients)
            ]
        return [results[i] for i in range(len(mail.recipients))]  # every recipient has its answer by now

    @staticmethod
    def _mail_options(client: smtplib.SMTP, mail: _Mail) -> list[str]:
        options: list[str] = []
        if client.has_extn("size"):
            options.append(f"SIZE={len(mail.message)}")  # RFC 1870 §6: lets the server refuse at MAIL, not after DATA
        if mail.needs_smtputf8:
            options.append("SMTPUTF8")  # RFC 6531 §3.4; smtplib then sends the commands as UTF-8
        return options


def _hello(client: smtplib.SMTP) -> None:
    # RFC 5321 §3.2 and §4.1.1.1: EHLO first; a server that does not know EHLO gets HELO.
    code, text = client.ehlo()
    if code == REPLY_CLOSING:  # HELO would find no one there
        raise _SetupError(STATUS_NO_CONNECTION, f"EHLO got {_reply(code, text)}")
    if not _positive(_reply(code, text)):
        helo_code, helo_text = client.helo()
        if not _positive(_reply(helo_code, helo_text)):
            raise _SetupError(
                STATUS_NO_CONNECTION, f"EHLO got {_reply(code, text)}, HELO got {_reply(helo_code, helo_text)}"
            )


def _quit_quietly(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except OSError:  # smtplib's own errors are OSErrors too
        client.close()


@functools.cache  # one per process and setting: loading the CA store costs tens of ms, and an agent is made per batch
def _client_tls_context(*, verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file if verify else None)
    if not verify:
        # RFC 3207 §4.1 leaves trusting the server's certificate to local policy; opportunistic TLS (RFC 7435) takes any
        # certificate, since the alternative to an unverified session is a plain-text one.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply(code: int, text: bytes | str) -> SmtpReply:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return SmtpReply(code, " ".join(text.splitlines()))  # smtplib joins multi-line replies with newlines


def _positive(reply: SmtpReply) -> bool:
    return 200 <= reply.code < 300  # RFC 5321 §4.2.1: 2yz is positive completion


def _outcome(reply: SmtpReply) -> Outcome:
    if _positive(reply):
        return Outcome.DELIVERED
    # RFC 5321 §4.2.1: 5yz is a permanent failure; 4yz, and anything a confused server says, is worth a retry.
    return Outcome.BOUNCED if reply.is_permanent else Outcome.DEFERRED


def _wire_address(address: str) -> str:
    """The address as sent in MAIL/RCPT: an internationalised domain becomes its A-label, so that only a non-ASCII
    local part needs SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    from postroom.deliver.mx import to_a_label  # dnspython's IDNA codec; only for internationalised domains

    try:
        return f"{local}@{to_a_label(domain)}"
    except ValueError:
        return address


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _unreachable(
    domain: str, mail: _Mail, failures: list[tuple[str, _SetupError]], policy: DomainTlsPolicy
) -> list[RecipientResult]:
    statuses = {error.status for _, error in failures}
    status = statuses.pop() if len(statuses) == 1 else STATUS_NO_CONNECTION
    tried = "; ".join(f"connection to {where} failed: {error.detail}" for where, error in failures)
    text = tried or f"no MX host of {domain} to try"
    return [
        RecipientResult(
            recipient, Outcome.DEFERRED, reply=f"{status} {text}", enhanced_status=status, tls_policy=policy.label
        )
        for recipient in mail.recipients
    ]


def _refused_by_policy(mail: _Mail, policy: DomainTlsPolicy, text: str) -> list[RecipientResult]:
    # RFC 8461 §5: an enforce failure is temporary (the sender checks for an updated policy before giving up), so the
    # recipients are deferred, and bounce only if the retry limit is reached.
    return [
        RecipientResult(
            recipient,
            Outcome.DEFERRED,
            reply=f"{STATUS_POLICY} {text}",
            enhanced_status=STATUS_POLICY,
            tls_policy=policy.label,
        )
        for recipient in mail.recipients
    ]


def _report_testing_policy(domain: str, policy: DomainTlsPolicy, mx_host: str, results: list[RecipientResult]) -> None:
    """RFC 8461 §5: a policy in testing mode is not enforced, only reported: log what enforcing it would have
    refused (the report an operator, or a TLSRPT exporter, reads)."""
    testing = policy.testing
    if testing is None or not results:
        return
    problems = []
    if not testing.matches(mx_host):
        problems.append(f"MX host {mx_host} does not match the policy's mx patterns")
    if results[0].tls_verified is not True:
        problems.append("no TLS" if not results[0].tls else f"the certificate of {mx_host} did not verify")
    if problems:
        logger.warning(
            "MTA-STS testing policy would have refused this delivery",
            extra={"domain": domain, "mx_host": mx_host, "policy_id": testing.policy_id, "problems": problems},
        )
