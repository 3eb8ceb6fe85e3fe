"""``/v1/templates``: a tenant's stored templates (and the built-ins), and a test render that sends nothing."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import ConfigDict, Field

from postroom.api.deps import require
from postroom.api.openapi_doc import NO_CONTENT
from postroom.commerce.sample_order import sample_variables
from postroom.core.auth import Principal, Scope
from postroom.core.errors import NotFoundError
from postroom.core.untrusted import InputModel
from postroom.mailtemplates.render import TemplateSource, check, render
from postroom.mailtemplates.template_store import NAME_PATTERN, TemplateNotFoundError
from postroom.wiring.services import services

router = Router()

TemplateName = Annotated[str, Path(pattern=NAME_PATTERN, description="Lower-case letters, digits, '_' and '-'.")]


class TemplateBody(InputModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, description="Jinja2; rendered onto one line.")
    html: str = Field(min_length=1, description="Jinja2, autoescaped; <style> rules are inlined at render time.")
    text: str | None = Field(default=None, description="Jinja2; generated from the HTML when absent.")
    description: str = Field(default="", max_length=1024)


class RenderBody(InputModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict)


class PreviewBody(TemplateBody):
    """An unsaved template (the editor's text) and the variables to render it with."""

    variables: dict[str, Any] = Field(default_factory=dict)


def _get(principal: Principal, name: str) -> Any:
    try:
        return services().templates.get(principal.tenant, name)
    except TemplateNotFoundError:
        raise NotFoundError(f"no template {name!r}", field="name") from None


@router.get("/", summary="List templates (the tenant's own and the built-ins)")
def list_templates(principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]) -> dict[str, Any]:
    return {"templates": [t.public() for t in services().templates.list(principal.tenant)]}


@router.post(
    "/preview",
    summary="Render an unsaved template with variables (the console's live preview); stores and sends nothing",
    description="The same renderer a send uses. A template that does not compile or render is a 422 whose message "
    "names the part and, where the renderer knows it, the line (`html: line 3: ...`).",
)
def preview_template(
    body: Annotated[PreviewBody, Body()],
    principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))],
) -> dict[str, str]:
    source = TemplateSource(subject=body.subject, html=body.html, text=body.text)
    check(source)
    return render(source, body.variables).as_dict()


@router.get("/<name>/sample", summary="Sample variables for previewing a template (a realistic order for order mails)")
def template_sample(
    name: TemplateName, principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]
) -> dict[str, Any]:
    _get(principal, name)
    return {"variables": sample_variables(name)}


@router.get("/<name>", summary="Read a template")
def get_template(
    name: TemplateName, principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]
) -> dict[str, Any]:
    public: dict[str, Any] = _get(principal, name).public()
    return public


@router.put(
    "/<name>",
    summary="Create or replace a template",
    responses={201: {"description": "Created"}, 200: {"description": "Replaced"}},
)
def put_template(
    name: TemplateName,
    body: Annotated[TemplateBody, Body()],
    principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_WRITE))],
) -> Response[dict[str, Any]]:
    source = TemplateSource(subject=body.subject, html=body.html, text=body.text)
    check(source)  # a template that does not compile is refused now, not when a mail needs it
    template, created = services().templates.put(principal.tenant, name, source, body.description)
    return Response(
        status_code=201 if created else 200,
        content_type=content_types.APPLICATION_JSON,
        body=template.public(),
        headers={"Location": f"/v1/templates/{name}"},
    )


@router.delete(
    "/<name>", summary="Delete a template (a built-in of that name shows again)", responses={204: NO_CONTENT}
)
def delete_template(
    name: TemplateName, principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_WRITE))]
) -> Response[str]:
    if not services().templates.delete(principal.tenant, name):
        raise NotFoundError(f"no stored template {name!r}", field="name")
    return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body="")


@router.post("/<name>/render", summary="Render a template with variables, without sending anything")
def render_template(
    name: TemplateName,
    body: Annotated[RenderBody, Body()],
    principal: Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))],
) -> dict[str, str]:
    return render(_get(principal, name).source, body.variables).as_dict()
