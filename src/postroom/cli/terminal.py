"""How the CLI speaks: Rich tables and colours on a terminal, plain JSON with ``--json``, and exit codes scripts can
trust (README, "The CLI": the table of codes).

Rich decides colours from the stream itself (none when piped, none with ``NO_COLOR``), so the same command is pleasant
on a terminal and clean in a log; ``--json`` output never passes through Rich at all.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from postroom.cli.api_session import ApiError, ApiUnreachableError, NotConfiguredError


class Exit(IntEnum):
    OK = 0
    REFUSED = 1  # the API refused the request (4xx), or some rows of a batch failed
    USAGE = 2  # bad flags or arguments (Click's own code for usage errors)
    AUTH = 3  # no URL/key configured, the key was refused (401), or it lacks the route's scope (403)
    NOT_FOUND = 4  # the thing named does not exist (404)
    UNAVAILABLE = 5  # the API could not be reached or failed (5xx, network): safe to retry later
    NOT_VERIFIED = 6  # `domains verify`: checked, but the domain is not verified yet (DNS still propagating?)


def exit_for(status: int, field: object = None) -> Exit:
    # A 403 about the key itself (missing scope) names the Authorization header; other 403s refuse the request's
    # content (a sender the key may not use, an unverified domain) and are refusals like a 422.
    if status == 401 or (status == 403 and field == "Authorization"):
        return Exit.AUTH
    if status == 404:
        return Exit.NOT_FOUND
    if status >= 500 or status == 429:
        return Exit.UNAVAILABLE
    return Exit.REFUSED


class Out:
    """One command's output: ``emit`` prints JSON in ``--json`` mode, otherwise runs the human renderer."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False)

    def emit(self, value: Any, human: Callable[[Console], None]) -> None:
        if self.json_mode:
            self.json(value)
        else:
            human(self.console)

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def fail(self, code: str, message: str, field: Any = None, *, status: Exit) -> Exit:
        """Report an error in the shape the API uses, on stdout as JSON or on stderr for people; return the code."""
        if self.json_mode:
            self.json({"error": {"code": code, "message": message, "field": field}})
        else:
            where = f" [dim]({field})[/dim]" if field else ""
            self.errors.print(f"[bold red]error:[/bold red] {_escape(message)}{where}")
        return status


@contextmanager
def reporting(out: Out) -> Iterator[None]:
    """Turn the client's exceptions into the documented exit codes (raised as SystemExit, which Click passes on)."""
    try:
        yield
    except ApiError as error:
        raise SystemExit(
            int(out.fail(error.code, error.message, error.field, status=exit_for(error.status, error.field)))
        ) from None
    except NotConfiguredError as error:
        raise SystemExit(int(out.fail("not_configured", str(error), status=Exit.AUTH))) from None
    except ApiUnreachableError as error:
        raise SystemExit(int(out.fail("unreachable", str(error), status=Exit.UNAVAILABLE))) from None


def table(*columns: str, title: str | None = None) -> Table:
    grid = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=column == "id")  # ids are copied whole, so never folded
    return grid


STATUS_STYLE = {
    "verified": "green",
    "published": "green",
    "delivered": "green",
    "sent": "green",
    "accepted": "cyan",
    "queued": "cyan",
    "pending": "yellow",
    "deferred": "yellow",
    "scheduled": "yellow",
    "missing": "red",
    "wrong": "red",
    "bounced": "red",
    "failed": "red",
    "complained": "red",
    "rejected": "red",
    "suppressed": "magenta",
    "retired": "dim",
    "disabled": "dim",
    "expired": "dim",
}


def styled(value: Any) -> str:
    text = _escape(str(value if value is not None else ""))
    style = STATUS_STYLE.get(text)
    return f"[{style}]{text}[/{style}]" if style else text


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def plain(value: Any) -> str:
    """Untrusted text (subjects, names, addresses) shown as text, never as Rich markup."""
    return _escape("" if value is None else str(value))
