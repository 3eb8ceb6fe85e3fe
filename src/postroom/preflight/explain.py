"""Explain a send without doing it: every check the accept path makes, collected instead of stopping at the first,
then what the worker would do — path and why, MX hosts and their TLS policy, DKIM, suppression per recipient, the
encoded size, pacing, the tenant's reputation breaker.

Nothing here re-implements a rule: each answer comes from the function the real path calls (``accept.intake``'s
checks, ``accept.mime_build``, ``deliver.path_policy``, ``deliver.mx``, the TLS policies with MTA-STS, the suppression
store, the pacer's read-only outlook). Reads only: no record, no queue pointer, no pace slot is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from postroom.accept.compose import compose, send_at
from postroom.accept.intake import check_delivery, check_sender, check_size
from postroom.accept.mime_build import build_message, render
from postroom.core.clock import isoformat, utcnow
from postroom.core.errors import PostroomError
from postroom.core.ids import message_id, message_id_header
from postroom.core.settings import DeliveryPath
from postroom.deliver.delivery_errors import DnsTemporaryError, NoMxAddressError, NoSuchDomainError, NullMxError
from postroom.deliver.path_policy import choose_path

if TYPE_CHECKING:
    from postroom.accept.compose import MessageInput
    from postroom.accept.intake import UploadCheck
    from postroom.accept.models import SendRequest
    from postroom.core.auth import Principal
    from postroom.core.domain_registry import DomainGate
    from postroom.core.settings import Settings
    from postroom.deliver.mx import MxResolver
    from postroom.deliver.tls_policy import TlsPolicies
    from postroom.mailtemplates.template_store import TemplateStore
    from postroom.suppression.suppression_store import SuppressionStore

__all__ = ["Explainer", "Refusal"]

_T = TypeVar("_T")


class PaceOutlook(Protocol):
    def outlook(self, path: DeliveryPath, recipients: list[str]) -> dict[str, object]: ...


class DkimKeys(Protocol):
    def get(self, domain: str, selector: str) -> Any: ...


@dataclass(frozen=True)
class Refusal:
    """One reason the send would be refused, as the send route would answer it (code, HTTP status, field)."""

    code: str
    status: int
    message: str
    field: str | None = None

    @classmethod
    def of(cls, error: PostroomError) -> Refusal:
        return cls(error.code, int(error.status), error.message, error.field)

    def public(self) -> dict[str, object]:
        return {"code": self.code, "status": self.status, "message": self.message, "field": self.field}


@dataclass
class Explainer:
    settings: Settings
    domains: DomainGate | None
    templates: TemplateStore | None
    suppressions: SuppressionStore
    mx: MxResolver
    tls: TlsPolicies
    pacing: PaceOutlook
    dkim_selectors: Mapping[str, tuple[str, ...]]
    dkim_keys: DkimKeys
    # The tenant's reputation breaker: None when the stack has none. Returns the state as the API shows it.
    breaker: Callable[[str, str], dict[str, object]] | None = None
    # The TLS of the last direct-SMTP session to a recipient domain (postroom.deliver.tls_sightings), if known.
    tls_seen: Callable[[str], dict[str, object] | None] | None = None
    # Upload references (postroom.accept.uploads): checked as the accept path checks them.
    uploads: UploadCheck | None = None
    # Recipient domains Postroom hosts itself (filed internally, never sent out).
    hosts_locally: Callable[[str], bool] = field(default=lambda _address: False)

    def explain(self, request: MessageInput, principal: Principal) -> dict[str, object]:
        refusals: list[Refusal] = []

        def check(step: Callable[[], _T]) -> _T | None:
            try:
                return step()
            except PostroomError as error:
                refusals.append(Refusal.of(error))
                return None

        composed = check(lambda: compose(request, principal.tenant, self.templates))
        message: SendRequest = composed if composed is not None else request
        # The same checks intake.prepare runs one after the other, each on its own so every reason is reported.
        check(lambda: check_sender(message, self.settings, domains=self.domains, principal=principal))
        check(lambda: check_delivery(message.delivery.value, self.settings))
        if self.uploads is not None and any(a.upload_id for a in message.attachments):
            uploads = self.uploads
            check(lambda: uploads.check(principal.tenant, message))
        check(lambda: check_size(message, self.settings))

        sender_domain = request.from_.to_address().domain.lower()
        recipients = request.envelope_recipients()
        path, why = self._path(request.delivery.value, sender_domain)
        local = [address for address in recipients if self.hosts_locally(address)]
        remote = [address for address in recipients if address not in local]
        suppressed = self.suppressions.check(principal.tenant, recipients, domain=sender_domain, topic=request.topic)
        sendable = [address for address in remote if address.lower() not in suppressed]
        domains = self._domains(sendable, path, refusals)
        breaker = self.breaker(principal.tenant, sender_domain) if self.breaker is not None else None
        if breaker is not None and breaker.get("state") == "open":
            refusals.append(
                Refusal("sending_paused", 503, str(breaker.get("reason") or "the tenant's sends are paused"), None)
            )
        due = send_at(request)
        return {
            "would_send": not refusals and bool(sendable or local),
            "refusals": [refusal.public() for refusal in refusals],
            "path": {"path": path.value, "why": why},
            "schedule": {"send_at": isoformat(due) if due and due > utcnow() else None},
            "recipients": [self._recipient(address, suppressed, local, path) for address in recipients],
            "domains": domains,
            "dkim": self._dkim(sender_domain, path),
            "size": self._size(composed, request),
            "pacing": self.pacing.outlook(path, sendable) if sendable else None,
            "breaker": breaker,
        }

    def _path(self, requested: str, sender_domain: str) -> tuple[DeliveryPath, str]:
        """The worker's choice (``choose_path`` over the record's delivery as intake writes it), and why."""
        delivery = requested
        why = f"requested delivery {requested!r}"
        if requested == "auto":
            registered = self.domains.delivery_for(sender_domain) if self.domains is not None else None
            if registered:
                delivery, why = registered, f"{sender_domain} was added for delivery {registered!r}"
            elif (seed := self.settings.sending_domains.get(sender_domain)) is not None and seed.delivery:
                why = f"SendingDomains sets {sender_domain}={seed.delivery.value}"
            else:
                why = f"the stack's DefaultDelivery ({self.settings.default_delivery.value})"
        path = choose_path(delivery, sender_domain, self.settings)
        if path is DeliveryPath.RELAY and not self.settings.relay_host:
            why += "; no relay host is configured"
        return path, why

    def _recipient(
        self, address: str, suppressed: Mapping[str, Any], local: list[str], path: DeliveryPath
    ) -> dict[str, object]:
        entry = suppressed.get(address.lower())
        if entry is not None:
            outcome = "suppressed"
        elif address in local:
            outcome = "filed internally"
        else:
            outcome = path.value
        return {
            "address": address,
            "outcome": outcome,
            "suppression": None
            if entry is None
            else {"reason": entry.reason.value, "scope": entry.scope, "since": entry.created_at},
        }

    def _domains(self, recipients: list[str], path: DeliveryPath, refusals: list[Refusal]) -> list[dict[str, object]]:
        """Per recipient domain: its MX hosts and TLS policy. On the SES and relay paths the MX is SES's or the
        smart host's business; it is still looked up, as a domain that accepts no mail is refused either way."""
        answers = []
        for domain in sorted({address.rpartition("@")[2].lower() for address in recipients}):
            entry: dict[str, object] = {"domain": domain, "mx": [], "problem": None}
            try:
                entry["mx"] = [
                    {"preference": host.preference, "host": host.hostname, "addresses": list(host.addresses)}
                    for host in self.mx.resolve(domain)
                ]
            except (NullMxError, NoSuchDomainError) as error:
                entry["problem"] = str(error)
                refusals.append(Refusal("recipient_domain_rejects_mail", 422, str(error), "to"))
            except (DnsTemporaryError, NoMxAddressError) as error:
                entry["problem"] = f"{error} (temporary: the worker would retry)"
            if path is DeliveryPath.SMTP:
                policy = self.tls.policy_for(domain)
                mta_sts = policy.mta_sts
                entry["tls"] = {
                    "policy": policy.label,
                    "level": policy.level.value,
                    "mta_sts": None
                    if mta_sts is None
                    else {"mode": mta_sts.mode.value, "mx": list(mta_sts.mx), "max_age": mta_sts.max_age},
                }
            else:
                entry["tls"] = {"policy": f"decided by {path.value}", "level": None, "mta_sts": None}
            entry["last_starttls"] = self.tls_seen(domain) if self.tls_seen is not None else None
            answers.append(entry)
        return answers

    def _dkim(self, domain: str, path: DeliveryPath) -> dict[str, object]:
        if path is DeliveryPath.SES:
            return {"signer": "ses", "selectors": [], "note": "SES signs with the identity's Easy DKIM keys"}
        try:
            selectors = self.dkim_selectors[domain]
        except KeyError:
            return {"signer": None, "selectors": [], "note": f"no DKIM key for {domain}: sent unsigned"}
        from postroom.deliver.dkim import DkimKeyError  # dkimpy and cryptography: loaded only when asked

        keys = []
        for selector in selectors:
            try:
                key = self.dkim_keys.get(domain, selector)
                keys.append(
                    {"selector": selector, "dns_name": key.dns_name, "algorithm": key.algorithm.value, "problem": None}
                )
            except DkimKeyError as error:  # the worker's signer would fail the same way: reported, not raised
                keys.append(
                    {
                        "selector": selector,
                        "dns_name": f"{selector}._domainkey.{domain}",
                        "algorithm": None,
                        "problem": str(error),
                    }
                )
        return {"signer": "postroom", "selectors": keys, "note": None}

    def _size(self, composed: SendRequest | None, request: MessageInput) -> dict[str, object]:
        """The MIME as the worker builds it (before tracking links and DKIM, which add a little)."""
        estimate = request.estimated_mime_size()
        built = None
        if composed is not None and not any(a.upload_id for a in composed.attachments):
            mid = message_id()
            domain = request.from_.to_address().domain
            built = len(render(build_message(composed, message_id=message_id_header(mid, domain), date=utcnow())))
        return {"encoded_bytes": built, "estimated_bytes": estimate, "limit_bytes": self.settings.max_message_bytes}
