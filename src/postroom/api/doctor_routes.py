"""``/v1/domains``: sending domains through the API (create, check, verify, retire) and the DNS doctor of each.

A domain created here is ``pending`` until ``verify`` finds every required record published; only then may mail be
sent from it (:class:`postroom.core.domain_registry.SendingDomainGate`). The ``SendingDomains`` parameter stays the
seed: those domains send as configured, and their doctor works as before.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import ConfigDict, Field, field_validator

from postroom.api.deps import require
from postroom.api.openapi_doc import errors
from postroom.core import aws
from postroom.core.auth import Principal, Scope
from postroom.core.clock import now_iso
from postroom.core.domain_registry import DomainRecord, DomainState, RegisteredDomain
from postroom.core.dynamo import is_conditional_failure
from postroom.core.errors import ConflictError, NotFoundError, ValidationFailedError
from postroom.core.settings import DeliveryPath
from postroom.core.untrusted import InputModel
from postroom.deliver.dkim import DkimAlgorithm, generate_key, store_private_key
from postroom.deliver.mx import parse_nameservers
from postroom.doctor.checks import read_ses_identity
from postroom.doctor.domain_setup import check_records, ses_records, smtp_records
from postroom.doctor.lookup import DnsLookup
from postroom.doctor.stack_context import ses_inbound_endpoint, stack_diagnosis
from postroom.wiring.services import services

if TYPE_CHECKING:
    from postroom.core.settings import Settings

router = Router()

_DOMAIN = r"^([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{2,63}\.?$"
_SELECTORS = r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$"
CHECK_BUDGET_SECONDS = 15.0  # DNS time for one GET or verify: API Gateway gives a request 29 s


class DomainCreate(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_DOMAIN, max_length=253, description="The domain mail will be sent from.")
    delivery: Literal["ses", "smtp", "auto"] = Field(
        default="auto", description="How its mail leaves; auto: the stack's default delivery path."
    )
    return_path: str | None = Field(
        default=None, pattern=_DOMAIN, description="Direct SMTP: the bounce domain (one of InboundDomains)."
    )
    mail_from: str | None = Field(
        default=None, pattern=_DOMAIN, description="SES: a custom MAIL FROM domain, a subdomain of name."
    )

    @field_validator("name", "return_path", "mail_from")
    @classmethod
    def _normal(cls, value: str | None) -> str | None:
        return value.lower().rstrip(".") if value is not None else None


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _lookup(settings: Settings) -> DnsLookup:
    nameservers = parse_nameservers(settings.dns_nameservers) if settings.dns_nameservers else None
    return DnsLookup(nameservers, budget_seconds=CHECK_BUDGET_SECONDS)


def _egress(settings: Settings) -> tuple[str, ...]:
    return tuple(ip.strip() for ip in settings.smtp_egress_ips.split(",") if ip.strip())


def _path(delivery: str, settings: Settings) -> DeliveryPath:
    return settings.default_delivery if delivery == "auto" else DeliveryPath(delivery)


def _owned(name: str, principal: Principal) -> RegisteredDomain:
    found = services().domain_registry.get(name)
    # Another tenant's domain answers like a missing one.
    if found is None or found.tenant != principal.tenant or found.state is DomainState.RETIRED:
        raise NotFoundError(f"no sending domain {name!r} was added through the API", field="domain")
    return found


def _checked(domain: RegisteredDomain, settings: Settings) -> RegisteredDomain:
    """The domain with each record checked now, and SES's word on the identity for the SES path."""
    records = tuple(check_records(domain.records, _lookup(settings)))
    ses_status = domain.ses_status
    ses_ok = True
    if _path(domain.delivery, settings) is DeliveryPath.SES:
        identity = read_ses_identity(aws.client("sesv2"), domain.name)
        ses_status = identity.error or (identity.dkim_status if identity.exists else "NOT_FOUND")
        ses_ok = identity.exists and identity.verified
    published = all(r.status == "published" for r in records if r.required)
    state = domain.state
    if state is not DomainState.RETIRED:
        state = DomainState.VERIFIED if published and ses_ok else DomainState.PENDING
    checked_at = now_iso()
    verified_at = (domain.verified_at or checked_at) if state is DomainState.VERIFIED else None
    return replace(
        domain, records=records, ses_status=ses_status, state=state, checked_at=checked_at, verified_at=verified_at
    )


@router.post(
    "/",
    summary="Add a sending domain",
    description=(
        "Creates the sending identity (SES: an Easy DKIM email identity; direct SMTP: Postroom's own RSA 2048 and "
        "Ed25519 DKIM keys) and answers the exact DNS records to publish, each with its purpose. The domain sends "
        "once POST /v1/domains/{name}/verify finds the required ones published."
    ),
    responses={201: {"description": "Created: the records to publish"}, **errors(409)},
)
def create_domain(
    body: Annotated[DomainCreate, Body()],
    principal: Annotated[Principal, Depends(require(Scope.DOMAINS_MANAGE))],
) -> Response[dict[str, object]]:
    svc = services()
    settings = svc.settings
    name = body.name
    if name in settings.sending_domains:
        raise ConflictError(f"{name!r} is already a sending domain of this stack (SendingDomains)", field="name")
    path = _path(body.delivery, settings)
    if path is DeliveryPath.RELAY:
        raise ValidationFailedError("relay domains are configured in SendingDomains, not here", field="delivery")
    if body.mail_from and (path is not DeliveryPath.SES or not body.mail_from.endswith(f".{name}")):
        raise ValidationFailedError("mail_from is for SES delivery and must be a subdomain of name", field="mail_from")
    if body.return_path and path is not DeliveryPath.SMTP:
        raise ValidationFailedError("return_path is for direct SMTP delivery (SES: mail_from)", field="return_path")
    if body.return_path and body.return_path not in settings.inbound_domains:
        # As for ReturnPathDomain: bounces to a domain Postroom does not receive would vanish.
        raise ValidationFailedError(
            f"{body.return_path} is not one of this stack's InboundDomains: Postroom would not receive its bounces",
            field="return_path",
        )
    existing = svc.domain_registry.get(name)
    if existing is not None and existing.state is not DomainState.RETIRED:
        raise ConflictError(f"{name!r} has already been added", field="name")
    dkim: list[dict[str, str]] = []
    records: list[DomainRecord]
    if path is DeliveryPath.SMTP:
        # A new selector per key and per creation (date plus random hex): a re-created domain never reuses, or
        # overwrites, a key that mail still in the queue may be signed with.
        stamp = datetime.now(UTC).strftime("%Y%m%d") + secrets.token_hex(3)
        keys = []
        for algorithm, letter in ((DkimAlgorithm.RSA, "r"), (DkimAlgorithm.ED25519, "e")):
            key, pem = generate_key(name, f"pr{stamp}{letter}", algorithm)
            store_private_key(
                settings.deliverability.dkim_key_source, settings.deliverability.dkim_key_prefix, key, pem
            )
            keys.append(key)
            dkim.append({"selector": key.selector, "algorithm": algorithm.value})
        records = smtp_records(
            name,
            keys,
            egress_ips=_egress(settings),
            return_path=body.return_path,
            inbound_mx=ses_inbound_endpoint(_region()),
        )
    else:
        tokens = _create_ses_identity(name)
        records = ses_records(name, tokens, mail_from=body.mail_from, region=_region())
    domain = RegisteredDomain(
        name=name,
        tenant=principal.tenant,
        delivery=body.delivery,
        state=DomainState.PENDING,
        records=tuple(records),
        dkim=tuple(dkim),
        return_path=body.return_path,
        mail_from=body.mail_from,
        created_at=now_iso(),
    )
    try:
        svc.domain_registry.put(domain, new=True)
    except Exception as error:
        if is_conditional_failure(error):
            raise ConflictError(f"{name!r} has already been added", field="name") from None
        raise
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=domain.public(),
        headers={"Location": f"/v1/domains/{name}"},
    )


def _create_ses_identity(name: str) -> list[str]:
    """The SES v2 email identity with Easy DKIM; its DKIM tokens (the CNAMEs to publish)."""
    from botocore.exceptions import ClientError

    sesv2 = aws.client("sesv2")
    try:
        response = sesv2.create_email_identity(EmailIdentity=name)
        tokens = (response.get("DkimAttributes") or {}).get("Tokens") or []
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "AlreadyExistsException":
            raise
        tokens = list(read_ses_identity(sesv2, name).tokens)
    return list(tokens)


@router.get("/", summary="The sending domains: the stack's (SendingDomains) and the tenant's added ones, by name")
def list_domains(principal: Annotated[Principal, Depends(require(Scope.DOMAINS_READ))]) -> dict[str, object]:
    svc = services()
    settings = svc.settings
    seeds = [
        {"name": name, "delivery": settings.delivery_for(name).value, "source": "stack", "state": "configured"}
        for name in settings.sending_domains
    ]
    added = [
        {"name": d.name, "delivery": d.delivery, "source": "api", "state": d.state.value}
        for d in svc.domain_registry.list(principal.tenant)
    ]
    return {"data": sorted(seeds + added, key=lambda row: str(row["name"]))}


@router.get("/<domain>", summary="A sending domain: each record published, missing or wrong, and its state")
def get_domain(
    domain: Annotated[str, Path(pattern=_DOMAIN)],
    principal: Annotated[Principal, Depends(require(Scope.DOMAINS_MANAGE))],
) -> dict[str, object]:
    found = _owned(domain.lower().rstrip("."), principal)
    # Checked now, not stored: GET changes nothing; verify is what lets a domain send.
    return _checked(found, services().settings).public() | {"state": found.state.value}


@router.post("/<domain>/verify", summary="Check a sending domain's records now; verified domains may send")
def verify_domain(
    domain: Annotated[str, Path(pattern=_DOMAIN)],
    principal: Annotated[Principal, Depends(require(Scope.DOMAINS_MANAGE))],
) -> dict[str, object]:
    svc = services()
    found = _owned(domain.lower().rstrip("."), principal)
    checked = _checked(found, svc.settings)
    svc.domain_registry.put(checked)
    svc.domains.forget(checked.name)  # this Lambda's own sends see the new state at once
    return checked.public()


@router.delete("/<domain>", summary="Retire a sending domain: nothing new is accepted from it")
def delete_domain(
    domain: Annotated[str, Path(pattern=_DOMAIN)],
    principal: Annotated[Principal, Depends(require(Scope.DOMAINS_MANAGE))],
) -> dict[str, object]:
    svc = services()
    found = _owned(domain.lower().rstrip("."), principal)
    # Mail already accepted keeps its queue pointer and goes as it would have; the DKIM keys stay stored so that it
    # is still signed. Only new sends are refused.
    retired = replace(found, state=DomainState.RETIRED)
    svc.domain_registry.put(retired)
    svc.domains.forget(retired.name)
    return retired.public()


@router.get(
    "/<domain>/doctor",
    summary="Check a sending domain's DNS",
    description=(
        "Looks up SPF, DKIM (SES Easy DKIM tokens, or the selectors given), DMARC, MTA-STS and, with inbound=true, "
        "MX, and says for each what is wrong and which record to publish. Always 200; `ok` is false if a check failed."
    ),
)
def domain_doctor(
    domain: Annotated[str, Path(pattern=_DOMAIN, description="A sending domain of this stack.")],
    principal: Annotated[Principal, Depends(require(Scope.DOMAINS_READ))],
    inbound: Annotated[bool, Query(description="Also check MX and MTA-STS as a domain that receives mail.")] = False,
    dkim_selector: Annotated[
        str | None, Query(pattern=_SELECTORS, description="DKIM selectors to check, comma-separated.")
    ] = None,
) -> dict[str, object]:
    svc = services()
    name = domain.lower().rstrip(".")
    selectors = tuple(s for s in (dkim_selector or "").split(",") if s)
    # Only the stack's own domains: the endpoint must not become a DNS lookup service for anyone holding a key.
    if name not in svc.settings.sending_domains:
        registered = svc.domain_registry.get(name)
        if registered is None or registered.tenant != principal.tenant or registered.state is DomainState.RETIRED:
            raise NotFoundError(f"{name!r} is not a sending domain of this stack (SendingDomains)", field="domain")
        selectors = selectors or tuple(d["selector"] for d in registered.dkim)
    report = stack_diagnosis(name, svc.settings, sesv2=aws.client("sesv2"), inbound=inbound, dkim_selectors=selectors)
    return report.to_dict()
