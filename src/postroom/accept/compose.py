"""What callers send: a message written out in full, or a stored template plus variables, optionally for later.

:class:`MessageInput` is the request body of ``POST /v1/messages`` (and of each batch row). It is a
:class:`~postroom.accept.models.SendRequest` with three more fields - ``template``, ``variables``, ``send_at`` - and
:func:`compose` turns it into the plain SendRequest that is stored and delivered: the template rendered once, at
accept time, so a later edit of the template never changes a message that was already accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from postroom.accept.models import MAX_RECIPIENTS, MAX_SUBJECT_LENGTH, SendRequest, _no_control
from postroom.core.errors import NotFoundError, ValidationFailedError
from postroom.mailtemplates.render import render
from postroom.mailtemplates.template_store import NAME_PATTERN, TemplateNotFoundError

if TYPE_CHECKING:
    from postroom.mailtemplates.template_store import StoredTemplate, TemplateStore

# EventBridge Scheduler's at() has no horizon of its own; bodies of scheduled messages are kept under scheduled/ in
# the bucket, whose lifecycle rule expires them after 3,660 days. Ten years is the honest limit.
MAX_SCHEDULE_AHEAD = timedelta(days=3650)
_TEMPLATE_FIELDS = ("subject", "text", "html")


class MessageInput(SendRequest):
    """``POST /v1/messages``: a full message, or ``template`` + ``variables``; ``send_at`` schedules it."""

    subject: str | None = Field(  # type: ignore[assignment]
        default=None, max_length=MAX_SUBJECT_LENGTH, description="Required unless a template gives it."
    )
    template: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Name of a stored (or built-in) template; it supplies subject, html and text.",
    )
    variables: dict[str, Any] = Field(default_factory=dict, description="Values the template refers to.")
    send_at: datetime | None = Field(
        default=None,
        description="ISO 8601 time with a zone, e.g. 2030-01-31T09:00:00Z: the message is held until then "
        "(status 'scheduled') and can be cancelled or rescheduled until it is queued.",
    )

    @field_validator("subject")
    @classmethod
    # Same name as SendRequest's validator on purpose: pydantic replaces a parent's validator by name, and this field is
    # optional here (a template may supply it), so the signature widens.
    def _subject(cls, value: str | None) -> str | None:  # type: ignore[override]
        return None if value is None else _no_control(value, "subject")

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("send_at needs a time zone, e.g. 2030-01-31T09:00:00Z or +01:00")
        if value - datetime.now(UTC) > MAX_SCHEDULE_AHEAD:
            raise ValueError("send_at may be at most 10 years ahead")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _whole_message(self) -> MessageInput:  # replaces SendRequest's check: a template supplies the content
        if self.template is not None:
            given = [name for name in _TEMPLATE_FIELDS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"the template supplies subject, html and text; do not also send {', '.join(given)}")
        else:
            if self.subject is None:
                raise ValueError("give a subject (or a template)")
            if self.text is None and self.html is None:
                raise ValueError("give a text or an html body (or both), or a template")
            if self.variables:
                raise ValueError("variables are only used with a template")
        total = len(self.to) + len(self.cc) + len(self.bcc)
        if total == 0:
            raise ValueError("at least one recipient is needed in to, cc or bcc")
        if total > MAX_RECIPIENTS:
            raise ValueError(f"{total} recipients: at most {MAX_RECIPIENTS} in to, cc and bcc together")
        return self


def compose(
    request: SendRequest, tenant: str, templates: TemplateStore | None, cache: dict[str, StoredTemplate] | None = None
) -> SendRequest:
    """The plain SendRequest to store: rendered from its template when it names one. ``cache`` (name → template)
    lets a batch read each template once."""
    if not isinstance(request, MessageInput):
        return request
    plain = request.model_dump(by_alias=True, exclude={"template", "variables", "send_at"}, exclude_none=True)
    if request.template is not None:
        if templates is None:
            raise ValidationFailedError("templates are not available on this entry point", field="template")
        stored = (cache or {}).get(request.template)
        if stored is None:
            try:
                stored = templates.get(tenant, request.template)
            except TemplateNotFoundError:
                raise NotFoundError(f"no template {request.template!r}", field="template") from None
            if cache is not None:
                cache[request.template] = stored
        plain.update(render(stored.source, request.variables).as_dict())
    try:
        return SendRequest.model_validate(plain)
    except ValidationError as exc:  # only what rendering produced can fail here: the rest was validated already
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "template"
        raise ValidationFailedError(f"the rendered template is not a valid message: {field}: {first['msg']}",
                                    field="template") from None  # fmt: skip


def template_name(request: SendRequest) -> str | None:
    return request.template if isinstance(request, MessageInput) else None


def send_at(request: SendRequest) -> datetime | None:
    return request.send_at if isinstance(request, MessageInput) else None
