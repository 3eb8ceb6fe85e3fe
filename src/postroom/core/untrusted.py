"""What Postroom accepts from outside: one JSON decoder for every untrusted body, and one rule for text.

Every entry point goes through these two, so no field and no route keeps a check of its own:

- :func:`loads` decodes a request or webhook body. Beyond RFC 8259 syntax it enforces the limits RFC 8259 §9 lets a
  parser set: nesting at most :data:`MAX_DEPTH` levels, integers of at most :data:`MAX_INTEGER_DIGITS` digits, and no
  ``NaN``/``Infinity`` (not JSON, RFC 8259 §6) nor a number that overflows to infinity. A body it refuses is refused
  whole with ``400 invalid_json``: it cannot be read, so no part of it can be accepted.
- :func:`unacceptable_text_at` is the text rule: no lone UTF-16 surrogate (``"\\ud800"`` is legal JSON, RFC 8259 §8.2,
  but no UTF-8 text can carry it, so S3, DynamoDB, SQS and SMTP would all fail on it after the 202). It is a content
  rule, not a syntax one, so it is applied by the models (:class:`InputModel`) and a bad batch row fails alone.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

from postroom.core.errors import InvalidJsonError, ValidationFailedError

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "InputModel",
    "check_text",
    "loads",
    "unacceptable_text_at",
]

# Postroom's deepest legitimate document is a template's variables (an order with line items with options): a few
# levels. 64 leaves room for any real payload and keeps every later walk (pydantic, json.dumps) far from Python's
# recursion limit.
MAX_DEPTH = 64
# 64-bit ids have 20 digits; nothing Postroom takes is a bigger number. Python itself refuses to convert more than
# 4,300 digits (a ValueError that is not a JSONDecodeError), and converting is quadratic below that.
MAX_INTEGER_DIGITS = 64

# A surrogate pair written in JSON (``"\ud83d\ude00"``) decodes to one code point; any surrogate left in a str is lone.
_SURROGATE = re.compile("[\ud800-\udfff]")

Path = tuple[str | int, ...]


def _parse_int(digits: str) -> int:
    if len(digits) - digits.startswith("-") > MAX_INTEGER_DIGITS:
        raise InvalidJsonError(
            f"the body has an integer of {len(digits.lstrip('-'))} digits; the limit is {MAX_INTEGER_DIGITS}",
            field="body",
        )
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJsonError(f"the number {text[:40]}... is too large to represent", field="body")
    return value


def _parse_constant(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not a JSON value (RFC 8259 §6)", field="body")


def _depth(value: Any) -> int:
    """The nesting depth of a decoded document, without recursion (so it cannot itself hit the recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in item)
    return deepest


def _too_deep() -> InvalidJsonError:
    return InvalidJsonError(f"the body is nested more than {MAX_DEPTH} levels deep", field="body")


def loads(body: str | bytes) -> Any:
    """Decode an untrusted JSON body; raises :class:`InvalidJsonError` (400) for anything it will not read."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")  # RFC 8259 §8.1: JSON exchanged between systems is UTF-8
        except UnicodeDecodeError as error:
            raise InvalidJsonError(
                f"the body is not UTF-8 (invalid byte at offset {error.start})", field="body"
            ) from None
    try:
        value = json.loads(body, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as error:
        raise InvalidJsonError(
            f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})", field="body"
        ) from None
    except RecursionError:
        # The C decoder recurses once per level and unwinds cleanly when Python's limit is reached.
        raise _too_deep() from None
    if _depth(value) > MAX_DEPTH:
        raise _too_deep()
    return value


def unacceptable_text_at(value: Any) -> Path | None:
    """Where, in a decoded document, the first string (or object key) breaking the text rule is; None if nowhere."""
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return path
                stack.append(((*path, key), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
    return None


_TEXT_RULE = "contains a lone UTF-16 surrogate (such as \\ud800), which is not text and cannot be sent"


def _field(path: Path) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".") or "body"


def check_text(value: Any) -> Any:
    """Raise :class:`ValidationFailedError` (422, naming the field) if ``value`` breaks the text rule."""
    path = unacceptable_text_at(value)
    if path is not None:
        raise ValidationFailedError(f"{_field(path)}: {_TEXT_RULE}", field=_field(path))
    return value


class InputModel(BaseModel):
    """Base of every model that validates outside input: its text, nested models and free-form values included, is
    checked against the text rule once, before any field validator sees it."""

    @model_validator(mode="before")
    @classmethod
    def _acceptable_text(cls, data: Any) -> Any:
        path = unacceptable_text_at(data)
        if path is not None:
            # ``loc`` in the context lets the API name the field (the model-level error itself has no location).
            raise PydanticCustomError("unacceptable_text", _TEXT_RULE, {"loc": path})
        return data
