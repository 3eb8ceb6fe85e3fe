"""``GET /v1/me``: which key is calling, its tenant and scopes (listeners such as SMTP submission check a key
with it before they accept a login)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends

from postroom.api.deps import current_principal
from postroom.core.auth import Principal

router = Router()


@router.get("/", summary="The calling API key: id, tenant and scopes")
def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, object]:
    return {"key_id": principal.key_id, "tenant": principal.tenant, "scopes": sorted(principal.scopes)}
