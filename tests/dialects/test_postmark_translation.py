"""The Postmark body → MessageInput translation on its own (no stack): what the SDKs send, honoured or refused."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from postroom.api.resolver import app  # noqa: F401 - the resolver imports the routes; importing it checks the wiring
from postroom.dialects import postmark

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


def translate(body: dict, *, with_template: bool = False):
    return postmark.translate(postmark.PostmarkMessage.model_validate(body), with_template=with_template)


def test_postmarker_body_with_explicit_nulls_and_cid_prefix() -> None:
    # GIVEN exactly what postmarker sends: comma lists, nulls, TrackLinks "None", Headers list, cid: prefix
    message = translate({
        "From": "Shop <orders@shop.example>", "To": '"Doe, Jane" <jane@example.org>, bob@example.org', "Cc": None,
        "Bcc": None, "Subject": "Hi", "Tag": None, "HtmlBody": "<img src='cid:logo'>", "TextBody": None,
        "Metadata": None, "ReplyTo": None, "Headers": [{"Name": "X-A", "Value": "1"}], "TrackOpens": None,
        "TrackLinks": "None", "MessageStream": None,
        "Attachments": [{"Name": "logo.png", "Content": PNG, "ContentType": "image/png", "ContentID": "cid:logo"}],
    })  # fmt: skip
    assert [m.email for m in message.to] == ["jane@example.org", "bob@example.org"]
    assert message.to[0].name == "Doe, Jane"
    assert message.headers == {"X-A": "1"}
    assert message.attachments[0].content_id == "logo"
    assert message.track_clicks is False
    assert message.track_opens is False


def test_node_attachment_with_null_content_id_is_an_ordinary_attachment() -> None:
    message = translate({"From": "orders@shop.example", "To": "a@example.org", "Subject": "s", "TextBody": "t",
                         "Attachments": [{"Name": "a.png", "Content": PNG, "ContentType": "image/png",
                                          "ContentID": None}]})  # fmt: skip
    assert message.attachments[0].content_id is None


@pytest.mark.parametrize(
    ("extra", "code", "field"),
    [
        ({"TrackLinks": "TextOnly"}, 300, "TrackLinks"),
        ({"TrackLinks": "HtmlAndText"}, 300, "TrackLinks"),
        ({"MessageStream": "broadcast"}, 1235, "MessageStream"),
        ({"TemplateId": 12}, 1101, "TemplateId"),
        ({"InlineCss": False}, 300, "InlineCss"),
        ({"Headers": [{"Name": "X-A", "Value": "1"}, {"Name": "x-a", "Value": "2"}]}, 300, "Headers"),
        ({"TemplateAlias": "welcome"}, 300, "TemplateAlias"),
    ],
)
def test_fields_that_cannot_be_honoured_are_refused(extra: dict, code: int, field: str) -> None:
    with pytest.raises(postmark.PostmarkError) as refused:
        translate({"From": "orders@shop.example", "To": "a@example.org", "Subject": "s", "TextBody": "t", **extra})
    assert refused.value.error_code == code
    assert field in refused.value.message


def test_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError):
        postmark.PostmarkMessage.model_validate({"From": "orders@shop.example", "Bogus": 1})


def test_postroom_errors_become_postmark_codes_with_postmark_field_names() -> None:
    from postroom.core.errors import UnauthorizedError, ValidationFailedError

    invalid = postmark.from_postroom(ValidationFailedError("to[0]: not an address", field="to[0]"))
    assert (invalid.status, invalid.error_code, invalid.message) == (422, 300, "To[0]: not an address")
    assert postmark.from_postroom(UnauthorizedError("no key")).body()["ErrorCode"] == 10
