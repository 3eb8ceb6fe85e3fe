"""``/v1/uploads``: a presigned S3 upload for an attachment too large for a send request's body."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import ConfigDict, Field

from postroom.api.deps import require
from postroom.core.auth import Principal, Scope
from postroom.core.untrusted import InputModel
from postroom.wiring.services import services

router = Router()


class UploadRequest(InputModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")
    size: int = Field(gt=0, description="The file's size in bytes: the presigned upload accepts at most this.")
    content_type: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$",
        description="MIME type; guessed from the filename when absent. The upload must be sent with it.",
    )


@router.post(
    "/",
    summary="Upload a large attachment",
    description="Answers an upload id and a presigned S3 POST (url and form fields; add the file as the last field, "
    "`file`). The policy limits the size to `size` (at most the stack's upload limit, 30 MB by default) and the type "
    'to `content_type`. Then send with `{"filename": ..., "upload_id": ...}` in `attachments`: the request stays '
    "small while the message may reach SES's 40 MB.",
    responses={201: {"description": "The upload id and where to upload"}},
)
def create_upload(
    body: Annotated[UploadRequest, Body()],
    principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))],
) -> Response[dict[str, object]]:
    content_type = (
        body.content_type or mimetypes.guess_type(body.filename, strict=False)[0] or "application/octet-stream"
    )
    upload = services().uploads.create(
        principal.tenant, filename=body.filename, content_type=content_type.lower(), size=body.size
    )
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=upload)
