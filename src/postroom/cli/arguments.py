"""Values the CLI parses from flags: durations (``90s``, ``24h``, ``7d``), ``--var k=v`` and comma lists."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import typer

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 24h or 7d")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def parse_vars(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; a value that reads as JSON (a number, a list, an object, true) is passed as that JSON, so a
    template can loop over ``--var 'items=[{"name": "Mug"}]'``; anything else is the plain string."""
    variables: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{pair!r} is not k=v")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        # A bare word stays a string even when JSON would read it otherwise ("null" → None would surprise).
        variables[name.strip()] = parsed if isinstance(parsed, (list, dict, int, float, bool)) else value
    return variables


def split_values(values: list[str] | None) -> list[str]:
    """Repeated options, each possibly a comma list: ``--scope a,b --scope c`` → ``[a, b, c]``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
