"""Which dialect a request path speaks, and how that dialect words a refusal.

The resolver renders every error in one place; on a dialect's path it asks this table for the dialect's shape, so
a refusal made anywhere (the gate, validation, a route, an unknown path, a crash) reaches the provider's SDK in the
form it parses. Adding a dialect is one entry here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from postroom.dialects import postmark, resend, sendgrid

if TYPE_CHECKING:
    from collections.abc import Callable

    from postroom.core.errors import PostroomError

__all__ = ["DIALECTS", "Dialect", "Refusal", "dialect_for"]


class Refusal(Protocol):
    """A dialect's error: what the resolver needs to answer it."""

    @property
    def status(self) -> int: ...

    def body(self) -> dict[str, object]: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    owns: Callable[[str | None], bool]
    from_postroom: Callable[[PostroomError], Refusal]
    # (status, Postroom's code, message) → the dialect's refusal, for answers no route gave (404, 405, 500).
    refusal: Callable[[int, str, str], Refusal]
    # The paths its routes serve and their methods: a known path asked with another method is a 405, anything else
    # (another path, or a path parameter no route matches) a 404.
    routes: tuple[tuple[re.Pattern[str], frozenset[str]], ...]

    def allowed_methods(self, path: str) -> frozenset[str]:
        for pattern, methods in self.routes:
            if pattern.match(path):
                return methods
        return frozenset()


_POST = frozenset({"POST"})


def _postmark_refusal(status: int, code: str, message: str) -> Refusal:
    error_code = postmark.INTERNAL_ERROR if status >= 500 else postmark.INVALID_EMAIL_REQUEST
    return postmark.PostmarkError(status, error_code, message, code=code)


DIALECTS = (
    Dialect(
        "Postmark",
        postmark.is_postmark_path,
        postmark.from_postroom,
        _postmark_refusal,
        ((re.compile(r"^/email(/batch|/withTemplate|/batchWithTemplates)?/?$"), _POST),),
    ),
    Dialect("Resend", resend.is_resend_path, resend.from_postroom, resend.refusal, resend.ROUTES),
    Dialect(
        "SendGrid", sendgrid.is_sendgrid_path, sendgrid.from_postroom, sendgrid.refusal, ((sendgrid.KNOWN_PATH, _POST),)
    ),
)


def dialect_for(path: str | None) -> Dialect | None:
    for dialect in DIALECTS:
        if dialect.owns(path):
            return dialect
    return None
