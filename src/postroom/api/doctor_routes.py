"""``/v1/domains/{domain}/doctor``: is a sending domain's DNS ready (SPF, DKIM, DMARC, MX, MTA-STS)?"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from postroom.api.deps import require
from postroom.core import aws
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError
from postroom.doctor.stack_context import stack_diagnosis
from postroom.wiring.services import services

router = Router()

_DOMAIN = r"^([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{2,63}\.?$"
_SELECTORS = r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$"


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
    _: Annotated[Principal, Depends(require(Scope.DOMAINS_READ))],
    inbound: Annotated[bool, Query(description="Also check MX and MTA-STS as a domain that receives mail.")] = False,
    dkim_selector: Annotated[
        str | None, Query(pattern=_SELECTORS, description="DKIM selectors to check, comma-separated.")
    ] = None,
) -> dict[str, object]:
    svc = services()
    name = domain.lower().rstrip(".")
    # Only the stack's own domains: the endpoint must not become a DNS lookup service for anyone holding a key.
    if name not in svc.settings.sending_domains:
        raise NotFoundError(f"{name!r} is not a sending domain of this stack (SendingDomains)", field="domain")
    selectors = tuple(s for s in (dkim_selector or "").split(",") if s)
    report = stack_diagnosis(name, svc.settings, sesv2=aws.client("sesv2"), inbound=inbound, dkim_selectors=selectors)
    return report.to_dict()
