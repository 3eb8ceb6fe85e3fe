"""The API resolver: routers mounted by resource, errors rendered in one place, the gate in front."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from postroom import __version__
from postroom.api import (
    address_routes,
    batch_routes,
    console_routes,
    doctor_routes,
    event_routes,
    key_routes,
    mail_routes,
    mailbox_routes,
    me_routes,
    message_routes,
    postmark_routes,
    reputation_routes,
    resend_routes,
    scheduled_routes,
    sendgrid_routes,
    stats_routes,
    store_routes,
    suppression_routes,
    template_routes,
    upload_routes,
    webhook_routes,
)
from postroom.api.deps import required_scopes
from postroom.api.gate import is_public_document, screen
from postroom.api.openapi_doc import DOCS_PATH, DOCUMENT_PATH, SECURITY, SECURITY_SCHEMES, declare_statuses
from postroom.api.responses import error_proxy_result, error_response, exception_handler, validation_failure
from postroom.core.auth import Principal, Scope
from postroom.core.errors import ForbiddenError, NotFoundError, PostroomError, UnsupportedMediaTypeError
from postroom.core.untrusted import loads as untrusted_json
from postroom.dialects import postmark, resend, sendgrid
from postroom.dialects.dispatch import Dialect, Refusal, dialect_for
from postroom.wiring.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(child=True)

# Every JSON body is decoded by postroom.core.untrusted (depth, digits and constants limited), never by plain
# json.loads.
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=untrusted_json)
app.include_router(batch_routes.router, prefix="/v1/messages")  # before messages: /batch is not a message id
app.include_router(message_routes.router, prefix="/v1/messages")
app.include_router(me_routes.router, prefix="/v1/me")
app.include_router(scheduled_routes.router, prefix="/v1/messages")
app.include_router(template_routes.router, prefix="/v1/templates")
app.include_router(event_routes.router, prefix="/v1/events")
app.include_router(event_routes.timeline_router, prefix="/v1/messages")
app.include_router(suppression_routes.router, prefix="/v1/suppressions")
app.include_router(webhook_routes.router, prefix="/v1/webhooks")
app.include_router(reputation_routes.router, prefix="/v1/reputation")
app.include_router(upload_routes.router, prefix="/v1/uploads")
app.include_router(doctor_routes.router, prefix="/v1/domains")
app.include_router(key_routes.router, prefix="/v1/keys")
app.include_router(store_routes.router, prefix="/v1/stores")
app.include_router(stats_routes.router, prefix="/v1/stats")
app.include_router(address_routes.router, prefix="/v1/addresses")
app.include_router(mailbox_routes.router, prefix="/v1/mailboxes")
app.include_router(mail_routes.router, prefix="/v1/mail")
app.include_router(console_routes.router)
# The providers' SDKs join their paths onto the host's root (postmarker, Node postmark, Resend, SendGrid), so these
# routes have no /v1 (README, "Switching from Postmark / Resend / SendGrid").
app.include_router(postmark_routes.router, prefix=postmark.PATH_PREFIX)
app.include_router(resend_routes.router, prefix=resend.PATH_PREFIX)
app.include_router(sendgrid_routes.router, prefix=sendgrid.PATH_PREFIX)

# Powertools builds the document from the routes; the statuses every route can answer (401, 403, 422, …) are added to
# each route's own declared responses here, once all are mounted and before any is resolved.
declare_statuses(app._static_routes + app._dynamic_routes)
app.configure_openapi(
    title="Postroom",
    version=__version__,
    description="Transactional email relay: send, track and receive mail over HTTP. Errors are always "
    '`{"error": {"code", "message", "field"}}`.',
    security_schemes=SECURITY_SCHEMES,
    security=SECURITY,
)
# A self-contained Swagger UI (Powertools inlines its JS and CSS: no CDN); the gate lets GET of it through unkeyed.
app.enable_swagger(path=DOCS_PATH)


@app.get(DOCUMENT_PATH, include_in_schema=False)
def openapi_document() -> Response[str]:
    """The OpenAPI 3.1 document, generated from the routes (served without a key, like /docs)."""
    return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema())


def _dialect() -> Dialect | None:
    """The dialect whose routes the current request is on (its errors must keep that provider's shape)."""
    return dialect_for(app.current_event.path)


def _refusal_response(refusal: Refusal) -> Response[str]:
    return Response(
        status_code=refusal.status, content_type=content_types.APPLICATION_JSON, body=json.dumps(refusal.body())
    )


@exception_handler(app, postmark.PostmarkError)
def _postmark_error(error: postmark.PostmarkError) -> Response[str]:
    return _refusal_response(error)


@exception_handler(app, resend.ResendError)
def _resend_error(error: resend.ResendError) -> Response[str]:
    return _refusal_response(error)


@exception_handler(app, sendgrid.SendGridError)
def _sendgrid_error(error: sendgrid.SendGridError) -> Response[str]:
    return _refusal_response(error)


@exception_handler(app, Exception)
def _unexpected_error(error: Exception) -> Response[str]:
    # The SDKs parse only their provider's error shape (postmarker raises KeyError('ErrorCode') on any other), so even
    # a crash on a dialect's route answers in that shape; everywhere else the exception goes on to Lambda as before.
    dialect = _dialect()
    if dialect is None:
        raise error
    logger.exception("unexpected error on a compatibility route", extra={"dialect": dialect.name})
    return _refusal_response(dialect.refusal(500, "internal_error", "Internal server error"))


def _error_response(error: PostroomError) -> Response[str]:
    dialect = _dialect()
    if dialect is not None:
        return _refusal_response(dialect.from_postroom(error))
    return error_response(error)


@exception_handler(app, PostroomError)
def _postroom_error(error: PostroomError) -> Response[str]:
    return _error_response(error)


@exception_handler(app, RequestValidationError)
def _validation_error(error: RequestValidationError) -> Response[str]:
    # Powertools validates the request before it resolves the route's dependencies, so the scope check has not run
    # yet: a key without the route's scope must get 403, not a description of what a valid body looks like.
    route = app.context.get("_route")  # the matched Route, which Powertools keeps in the resolver's context
    principal = app.context.get("principal")
    if route is not None and isinstance(principal, Principal):
        missing = sorted(scope.value for scope in required_scopes(route.func) if not principal.allows(scope))
        if missing:
            lacking = ForbiddenError(f"this API key lacks the {missing[0]!r} scope", field="Authorization")
            return _error_response(lacking)
    return _error_response(validation_failure(list(error.errors())))


@exception_handler(app, RequestUnsupportedContentType)
def _unsupported_content_type(_: RequestUnsupportedContentType) -> Response[str]:
    # The gate admits only what the resolver parses; should the two ever disagree, the answer keeps Postroom's shape.
    content_type = app.current_event.headers.get("content-type") or "none"
    return _error_response(
        UnsupportedMediaTypeError(
            f"send the body as JSON with 'Content-Type: application/json' (got {content_type!r})", field="Content-Type"
        )
    )


@exception_handler(app, RouteNotFoundError)
def _not_found(_: RouteNotFoundError) -> Response[str]:
    event = app.current_event
    dialect = _dialect()
    if dialect is not None:
        principal = app.context.get("principal")
        if isinstance(principal, Principal) and not principal.allows(Scope.MESSAGES_SEND):
            # The compatibility routes send mail: a key that may not send is told so before anything about the route.
            scope = Scope.MESSAGES_SEND.value
            lacking = ForbiddenError(f"this API key lacks the {scope!r} scope", field="Authorization")
            return _refusal_response(dialect.from_postroom(lacking))
        allowed = dialect.allowed_methods(event.path)
        status, code, text = (
            (
                405,
                "method_not_allowed",
                f"method not allowed: this {dialect.name} route takes {', '.join(sorted(allowed))}",
            )
            if allowed and event.http_method.upper() not in allowed
            else (404, "not_found", "no route")
        )
        return _refusal_response(dialect.refusal(status, code, f"{text} ({event.http_method} {event.path})"))
    return error_response(NotFoundError(f"no route {event.http_method} {event.path}"))


# Powertools keeps the current event and its context (the principal) on the resolver instance. Lambda gives an
# environment one event at a time, so on AWS this lock is never contended; the local stack runs the send and mailbox
# functions, which share this resolver, on threads of one process, where two requests would read each other's
# principal without it.
_one_request_at_a_time = threading.Lock()


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with _one_request_at_a_time:
        return _handle(event, context)


def _handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_public_document(event):
        return app.resolve(event, context)  # the API's description: nothing to authenticate, no body
    if console_routes.is_public(event):  # the console's own files: no key, no body, no data
        return app.resolve(event, context)
    try:
        principal = screen(event, services())
    except PostroomError as error:
        logger.info("request refused before routing", extra={"code": error.code, "status": int(error.status)})
        dialect = dialect_for(event.get("path"))
        if dialect is not None:
            refusal = dialect.from_postroom(error)
            return {
                "statusCode": refusal.status,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": json.dumps(refusal.body()),
                "isBase64Encoded": False,
            }
        return error_proxy_result(error)
    app.append_context(principal=principal)
    return app.resolve(event, context)
