"""Route dependencies: the authenticated caller and the scope a route needs."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Request

from postroom.core.auth import Principal, Scope
from postroom.core.errors import ForbiddenError, UnauthorizedError


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
    dependency.scope = scope  # type: ignore[attr-defined]  # read by required_scopes()
    return dependency


def required_scopes(func: Callable[..., object]) -> set[Scope]:
    """The scopes a route handler's ``Depends(require(...))`` parameters ask for."""
    from typing import get_args, get_type_hints

    from aws_lambda_powertools.event_handler.depends import Depends

    scopes: set[Scope] = set()
    try:
        hints = get_type_hints(func, include_extras=True)
    except (NameError, TypeError):
        return scopes
    for hint in hints.values():
        for extra in get_args(hint)[1:]:
            scope = getattr(getattr(extra, "dependency", None), "scope", None) if isinstance(extra, Depends) else None
            if isinstance(scope, Scope):
                scopes.add(scope)
    return scopes
