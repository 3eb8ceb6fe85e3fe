"""Errors a caller can act on. Each carries the HTTP status and a stable code; the API layer renders them as
``{"error": {"code", "message", "field"}}`` in one place."""

from __future__ import annotations

from http import HTTPStatus


class PostroomError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    code: str = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, details: list[dict[str, object]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or []

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidJsonError(PostroomError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_json"


class ValidationFailedError(PostroomError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "validation_error"


class UnauthorizedError(PostroomError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class InvalidKeyError(UnauthorizedError):
    """A key was presented but is not valid (or is disabled); the dialects that tell it apart from a missing key
    (Resend: 401 missing_api_key, 403 invalid_api_key) read the class."""


class ForbiddenError(PostroomError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class SenderNotAllowedError(ForbiddenError):
    code = "sender_not_allowed"


class NotFoundError(PostroomError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class ConflictError(PostroomError):
    status = HTTPStatus.CONFLICT
    code = "conflict"


class PayloadTooLargeError(PostroomError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class UnsupportedMediaTypeError(PostroomError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class ServiceUnavailableError(PostroomError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"
