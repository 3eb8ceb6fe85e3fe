"""Mailbox API errors a client can act on (rendered like every PostroomError)."""

from __future__ import annotations

from http import HTTPStatus

from postroom.core.errors import PostroomError


class ConflictError(PostroomError):
    status = HTTPStatus.CONFLICT
    code = "conflict"


class CannotCalculateChangesError(PostroomError):
    """JMAP's cannotCalculateChanges: the client's state is too old (or unknown); it must list the mailbox again."""

    status = HTTPStatus.GONE
    code = "cannot_calculate_changes"


class InvalidCursorError(PostroomError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_cursor"


class ModifiedError(PostroomError):
    """A conditional change (``unchanged_since``) found the message changed since: read it again, then decide."""

    status = HTTPStatus.PRECONDITION_FAILED
    code = "modified"
