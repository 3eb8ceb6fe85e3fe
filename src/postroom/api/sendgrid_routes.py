"""SendGrid-compatible ``POST /v3/mail/send`` at the root of the host: a thin translation onto the same accept path.

The key arrives as ``Authorization: Bearer`` (api/gate). :mod:`postroom.dialects.sendgrid` turns each
personalization into its own message; all are validated and screened before any is accepted (SendGrid refuses a
request whole), then ``services().accept_many`` accepts them. The answer is SendGrid's 202 with ``X-Message-Id`` (the
first message's Postroom id) and ``X-Postroom-Message-Ids`` (every message's, in personalization order). Errors are
rendered in SendGrid's shape by the resolver (``dialects.dispatch``).
"""

# No ``from __future__ import annotations``: Powertools evaluates the routes' hints on every request (message_routes).

from dataclasses import replace
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends
from pydantic import ValidationError

from postroom.accept.compose import MessageInput
from postroom.accept.intake import Accepted
from postroom.api.deps import require
from postroom.api.dialect_support import all_inactive, json_payload
from postroom.api.openapi_doc import errors
from postroom.api.responses import validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.errors import PostroomError
from postroom.dialects import sendgrid
from postroom.wiring.services import services

# Powertools' Router.__init__ carries no annotations; the instance itself is typed.
router = Router()

IDS_HEADER = "X-Postroom-Message-Ids"


def _messages(principal: Principal) -> list[MessageInput]:
    try:
        mail = sendgrid.SendGridMail.model_validate(json_payload(router.current_event.body))
    except ValidationError as exc:
        raise validation_failure([dict(item) for item in exc.errors()]) from None
    shared = sendgrid.shared_fields(mail)
    messages: list[MessageInput] = []
    for index in range(len(mail.personalizations)):
        try:
            message = sendgrid.translate(mail, index, shared)
        except ValidationError as exc:  # name the field as SendGrid does: personalizations.0.to.0.email
            raise sendgrid.from_postroom(validation_failure([dict(item) for item in exc.errors()]), index) from None
        suppressed = all_inactive(message, principal)
        if suppressed:
            raise sendgrid.suppressed_recipients(index, suppressed)
        messages.append(message)
    return messages


@router.post(
    "/mail/send",
    summary="SendGrid v3: send mail (one message per personalization)",
    status_code=202,
    responses={
        202: {"description": "Accepted; `X-Message-Id` names the first message, `X-Postroom-Message-Ids` all"},
        **errors(503),
    },
)
def mail_send(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_SEND))]) -> Response[Any]:
    messages = _messages(principal)
    outcomes: list[Accepted | PostroomError]
    if len(messages) == 1:
        # The usual request: one personalization. accept() spares accept_many's thread pool and batch enqueue.
        try:
            outcomes = [services().accept(messages[0], principal)]
        except PostroomError as refused:
            outcomes = [refused]
    else:
        outcomes = services().accept_many(messages, principal)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, PostroomError):
            # Validation ran before: only a sender, template, size or storage refusal reaches here, and SendGrid's
            # answer names the first one. (Personalizations accepted before it stay accepted: nothing accepted is
            # dropped; their ids are in the message.)
            error = sendgrid.from_postroom(outcome, index)
            accepted = [o.id for o in outcomes if isinstance(o, Accepted)]
            if accepted:
                error = replace(error, message=f"{error.message} (accepted meanwhile: {', '.join(accepted)})")
            raise error
    ids = [outcome.id for outcome in outcomes if isinstance(outcome, Accepted)]
    return Response(status_code=202, body="", headers={"X-Message-Id": ids[0], IDS_HEADER: ",".join(ids)})
