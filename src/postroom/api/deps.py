"""Route dependencies: the authenticated caller and the scope a route needs."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Request

from postroom.auth import Principal, Scope
from postroom.errors import ForbiddenError, UnauthorizedError


def current_principal(request: Request) -> Principal:
    principal = request.context.get("principal")
    if not isinstance(principal, Principal):  # the gate always sets it; this guards a mis-wired handler
        raise UnauthorizedError("no authenticated caller")
    return principal


def require(scope: Scope) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        principal = current_principal(request)
        if not principal.allows(scope):
            raise ForbiddenError(f"this API key lacks the {scope.value!r} scope", field="Authorization")
        return principal

    dependency.__name__ = f"require_{scope.name.lower()}"
    return dependency
