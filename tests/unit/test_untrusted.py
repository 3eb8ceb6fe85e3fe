"""postroom.core.untrusted: the one JSON decoder for untrusted bodies and the one text rule, pinned with hypothesis over
the request models: wherever a lone surrogate sits in a send request, the model refuses it and names the place; text
without one is never refused for it; any document within the limits decodes to what json.dumps wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from postroom.accept.compose import MessageInput
from postroom.api.batch_routes import BatchRequest
from postroom.api.resolver import app
from postroom.api.responses import validation_failure
from postroom.core.errors import InvalidJsonError, ValidationFailedError
from postroom.core.untrusted import MAX_DEPTH, MAX_INTEGER_DIGITS, InputModel, check_text, loads, unacceptable_text_at

LONE = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
# Any text a client can send as UTF-8: every code point except the surrogates (Unicode category Cs).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)
SCALARS = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False)
DOCUMENTS = st.recursive(
    SCALARS | TEXT, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=25
)


def _with_lone(text: str, lone: str, at: int) -> str:
    at = min(at, len(text))
    return text[:at] + lone + text[at:]


# A valid send request, and the string places a caller controls, each with the field path the API names.
VALID: dict[str, Any] = {
    "from": {"email": "orders@shop.example", "name": "Shop"},
    "to": ["ann@example.org"],
    "subject": "Your order",
    "text": "Thanks",
    "html": "<p>Thanks</p>",
    "headers": {"X-Campaign": "spring"},
    "metadata": {"order": "1001"},
    "tags": ["receipt"],
    "attachments": [{"filename": "a.txt", "content": "aGk="}],
}
PLACES: list[tuple[tuple[str | int, ...], str]] = [
    (("from", "name"), "from.name"),
    (("from", "email"), "from.email"),
    (("to", 0), "to[0]"),
    (("subject",), "subject"),
    (("text",), "text"),
    (("html",), "html"),
    (("headers", "X-Campaign"), "headers.X-Campaign"),
    (("metadata", "order"), "metadata.order"),
    (("tags", 0), "tags[0]"),
    (("attachments", 0, "filename"), "attachments[0].filename"),
]


def _replace(document: Any, path: tuple[str | int, ...], value: str) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


@given(place=st.sampled_from(PLACES), text=TEXT, lone=LONE, at=st.integers(0, 20))
def test_a_lone_surrogate_anywhere_in_a_send_request_is_refused_and_located(
    place: tuple[tuple[str | int, ...], str], text: str, lone: str, at: int
) -> None:
    path, field = place
    request = _replace(VALID, path, _with_lone(text, lone, at))
    with pytest.raises(ValidationError) as caught:
        MessageInput.model_validate(request)
    # THEN one error, of the text rule, which the API renders naming the field
    assert [e["type"] for e in caught.value.errors()] == ["unacceptable_text"]
    error = validation_failure(list(caught.value.errors()))
    assert (error.status, error.field) == (422, field)


@given(key=KEYS, lone=LONE, at=st.integers(0, 8))
def test_a_lone_surrogate_in_a_key_is_refused(key: str, lone: str, at: int) -> None:
    request = {**VALID, "metadata": {_with_lone(key, lone, at): "x"}}
    with pytest.raises(ValidationError) as caught:
        MessageInput.model_validate(request)
    assert [e["type"] for e in caught.value.errors()] == ["unacceptable_text"]


def _refusals(request: dict[str, Any]) -> set[str]:
    try:
        MessageInput.model_validate(request)
    except ValidationError as exc:
        return {str(error["type"]) for error in exc.errors()}
    return set()


@given(text=TEXT, name=TEXT)
def test_text_without_a_lone_surrogate_is_never_refused_for_it(text: str, name: str) -> None:
    # other rules (control characters in a display name…) may refuse it, never the text rule
    assert "unacceptable_text" not in _refusals({**VALID, "text": text, "metadata": {"note": text}})
    assert "unacceptable_text" not in _refusals({**VALID, "from": {"email": "orders@shop.example", "name": name}})


@given(document=DOCUMENTS)
def test_any_document_within_the_limits_decodes_as_written(document: Any) -> None:
    assert loads(json.dumps(document)) == document
    assert loads(json.dumps(document, ensure_ascii=False).encode()) == document
    assert unacceptable_text_at(document) is None


@given(document=DOCUMENTS, lone=LONE)
def test_the_text_rule_finds_a_lone_surrogate_at_any_depth(document: Any, lone: str) -> None:
    nested = {"outer": [document, {"inner": lone}]}
    assert unacceptable_text_at(nested) == ("outer", 1, "inner")
    with pytest.raises(ValidationFailedError) as caught:
        check_text(loads(json.dumps(nested)))  # json.dumps escapes it as \udXXX, legal JSON
    assert caught.value.field == "outer[1].inner"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested"),
        ('{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "nested"),
        ("1" * 5_000, "digits"),
        ("[-" + "1" * (MAX_INTEGER_DIGITS + 1) + "]", "digits"),
        ("NaN", "NaN"),
        ("[-Infinity]", "Infinity"),
        ("1e400", "too large"),
        ('{"a": 1', "not valid JSON"),
        (b'{"a": "\xff"}', "not UTF-8"),
    ],
)
def test_the_decoder_refuses_what_it_will_not_read(body: str | bytes, words: str) -> None:
    with pytest.raises(InvalidJsonError) as caught:
        loads(body)
    assert words in caught.value.message
    assert (caught.value.status, caught.value.field) == (400, "body")


def test_the_decoder_takes_documents_at_the_limits() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert loads("-" + "9" * MAX_INTEGER_DIGITS) == -int("9" * MAX_INTEGER_DIGITS)
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"  # a surrogate pair is one code point, not a lone surrogate


def _body_models() -> set[type[BaseModel]]:
    found = set()
    for route in app._static_routes + app._dynamic_routes:
        for param in route.dependant.body_params:
            annotation = param.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found.add(annotation)
    return found


def test_every_request_body_model_obeys_the_text_rule() -> None:
    # The batch envelope is the one exception, on purpose: its rows are validated one by one as MessageInput (an
    # InputModel), so that a bad row fails alone.
    models = _body_models()
    assert MessageInput in models
    assert {model for model in models if not issubclass(model, InputModel)} == {BatchRequest}
