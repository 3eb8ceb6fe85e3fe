"""The Resend and SendGrid translations on their own, and their error shapes on every answer of their routes, through
the real send API handler over in-process moto (the ``stack`` fixture): what cannot be honoured is refused with the
provider's own error, and 401/403/404/405/413/415 keep the provider's body (its SDKs parse nothing else)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from postroom.api.resolver import app  # noqa: F401 - the resolver imports the routes; importing it checks the wiring
from postroom.dialects import resend, sendgrid
from tests.conftest import Stack

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
RESEND = {"from": "orders@shop.example", "to": "a@example.org", "subject": "s", "text": "t"}
SENDGRID = {
    "personalizations": [{"to": [{"email": "a@example.org"}]}],
    "from": {"email": "orders@shop.example"},
    "subject": "s",
    "content": [{"type": "text/plain", "value": "t"}],
}


def resend_translate(body: dict[str, Any]) -> Any:
    return resend.translate(resend.ResendEmail.model_validate(body))


def test_resend_byte_list_and_base64_attachments_are_the_same_file() -> None:
    as_list = resend_translate({**RESEND, "attachments": [{"filename": "a.png", "content": list(b"\x89PNG\r\n\x1a\n"),
                                                           "inline_content_id": "logo"}]})  # fmt: skip
    as_text = resend_translate({**RESEND, "attachments": [{"filename": "a.png", "content": PNG, "content_id": "logo"}]})
    assert as_list.attachments[0].content == as_text.attachments[0].content == PNG
    assert as_list.attachments[0].content_id == as_text.attachments[0].content_id == "logo"


def test_resend_tags_become_metadata_and_template_id_names_a_stored_template() -> None:
    message = resend_translate({"from": "orders@shop.example", "to": ["a@example.org"],
                                "tags": [{"name": "kind", "value": "welcome"}],
                                "template": {"id": "welcome", "variables": {"name": "Ann"}}})  # fmt: skip
    assert message.metadata == {"kind": "welcome"}
    assert (message.template, message.variables) == ("welcome", {"name": "Ann"})


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"attachments": [{"filename": "a.pdf", "path": "https://example.org/a.pdf"}]}, "attachments[0].path"),
        ({"topic_id": "news"}, "topic_id"),
        ({"scheduled_at": "tomorrow at 9"}, "scheduled_at"),
        ({"scheduled_at": "2030-01-31T09:00:00"}, "scheduled_at"),
        ({"tags": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}, "tags"),
    ],
)
def test_resend_fields_that_cannot_be_honoured_are_refused(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(resend.ResendError) as refused:
        resend_translate({**RESEND, **extra})
    assert (refused.value.status, refused.value.name, refused.value.field) == (422, "validation_error", field)


def test_resend_unknown_fields_are_refused_not_dropped() -> None:
    with pytest.raises(ValidationError):
        resend.ResendEmail.model_validate({**RESEND, "react": "<Email/>"})


def test_sendgrid_personalization_overrides_and_substitutions() -> None:
    mail = sendgrid.SendGridMail.model_validate({
        **SENDGRID,
        "personalizations": [
            {"to": [{"email": "a@example.org"}], "subject": "Hi -n-", "substitutions": {"-n-": "Ann"},
             "custom_args": {"k": "p"}, "send_at": 1924992000},
            {"to": [{"email": "b@example.org"}], "headers": {"X-A": "2"}},
        ],
        "content": [{"type": "text/plain", "value": "Dear -n-"}], "custom_args": {"k": "r", "j": "r"},
        "headers": {"X-A": "1"}, "categories": ["c"], "reply_to": {"email": "h@shop.example"},
    })  # fmt: skip
    shared = sendgrid.shared_fields(mail)
    first, second = (sendgrid.translate(mail, index, shared) for index in range(2))
    assert (first.subject, first.text, first.metadata) == ("Hi Ann", "Dear Ann", {"k": "p", "j": "r"})
    assert first.send_at is not None
    assert first.send_at.year == 2031
    assert (second.subject, second.text, second.headers) == ("s", "Dear -n-", {"X-A": "2"})
    assert second.tags == ["c"]
    assert [m.email for m in second.reply_to] == ["h@shop.example"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"asm": {"group_id": 1}}, "asm"),
        ({"batch_id": "b"}, "batch_id"),
        ({"ip_pool_name": "p"}, "ip_pool_name"),
        ({"mail_settings": {"sandbox_mode": {"enable": True}}}, "mail_settings"),
        ({"reply_to": {"email": "a@shop.example"}, "reply_to_list": [{"email": "b@shop.example"}]}, "reply_to_list"),
        ({"tracking_settings": {"open_tracking": {"enable": True, "substitution_tag": "%o%"}}},
         "tracking_settings.open_tracking.substitution_tag"),
        ({"content": [{"type": "text/plain", "value": "a"}, {"type": "text/plain", "value": "b"}]}, "content.1.type"),
        ({"attachments": [{"content": PNG, "filename": "a.png", "disposition": "inline"}]},
         "attachments.0.content_id"),
    ],
)  # fmt: skip
def test_sendgrid_fields_that_cannot_be_honoured_are_refused(extra: dict[str, Any], field: str) -> None:
    mail = sendgrid.SendGridMail.model_validate({**SENDGRID, **extra})
    with pytest.raises(sendgrid.SendGridError) as refused:
        sendgrid.translate(mail, 0, sendgrid.shared_fields(mail))
    assert (refused.value.status, refused.value.field) == (400, field)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"personalizations": [{"to": [{"email": "a@example.org"}], "from": {"email": "x@shop.example"}}]},
         "personalizations.0.from"),
        ({"template_id": "t", "personalizations": [{"to": [{"email": "a@example.org"}], "substitutions": {"a": "b"}}]},
         "personalizations.0.substitutions"),
    ],
)  # fmt: skip
def test_sendgrid_personalization_refusals_name_sendgrids_field(extra: dict[str, Any], field: str) -> None:
    mail = sendgrid.SendGridMail.model_validate({**SENDGRID, **extra})
    with pytest.raises(sendgrid.SendGridError) as refused:
        sendgrid.translate(mail, 0, sendgrid.shared_fields(mail))
    assert refused.value.field == field


def resend_shape(body: dict[str, Any], status: int, name: str) -> None:
    assert (body["statusCode"], body["name"]) == (status, name), body
    assert body["message"]
    assert body["error"]["code"]  # Postroom's own structured error rides along


@pytest.mark.parametrize(
    ("method", "path", "headers", "key", "status", "name"),
    [
        ("GET", "/emails", {}, "default", 405, "method_not_allowed"),
        ("DELETE", "/emails/msg_00000000000000000000000000", {}, "default", 405, "method_not_allowed"),
        ("GET", "/emails/nowhere/else", {}, "default", 404, "not_found"),
        ("GET", "/emails/msg_00000000000000000000000000", {}, "default", 404, "not_found"),
        ("POST", "/emails", {"Content-Type": "text/plain"}, "default", 415, "validation_error"),
        ("POST", "/emails", {}, None, 401, "missing_api_key"),
        ("POST", "/emails", {}, "not-a-key", 403, "invalid_api_key"),
        ("POST", "/emails", {"Idempotency-Key": " bad "}, "default", 400, "invalid_idempotency_key"),
    ],
)
def test_every_resend_answer_has_resends_error_body(
    stack: Stack, method: str, path: str, headers: dict[str, str], key: str | None, status: int, name: str
) -> None:
    got, body = stack.request(method, path, RESEND if method == "POST" else None, key=key, headers=headers)
    assert got == status, body
    resend_shape(body, status, name)


def test_resend_idempotency_key_reused_with_another_body_is_resends_409(stack: Stack) -> None:
    first, _ = stack.request("POST", "/emails", RESEND, headers={"Idempotency-Key": "k-1"})
    assert first == 200
    status, body = stack.request("POST", "/emails", {**RESEND, "subject": "other"}, headers={"Idempotency-Key": "k-1"})
    assert status == 409
    resend_shape(body, 409, "invalid_idempotent_request")


def test_resend_reads_back_a_raw_message_too(stack: Stack) -> None:
    # GIVEN a message sent raw (only its MIME is kept, no request body)
    raw = b"From: Shop <orders@shop.example>\r\nTo: ann@example.org\r\nSubject: Raw one\r\n\r\nHello.\r\n"
    status, body = stack.request("POST", "/v1/messages/raw", {"raw": base64.b64encode(raw).decode()})
    assert status == 202, body
    # WHEN Resend's GET /emails/{id} reads it  THEN its sender, recipients and subject
    status, email = stack.request("GET", f"/emails/{body['id']}")
    assert status == 200, email
    assert (email["from"], email["to"], email["subject"]) == ("orders@shop.example", ["ann@example.org"], "Raw one")
    assert email["last_event"] == "queued"


def test_resend_strict_batch_refuses_whole_and_permissive_lists_errors(stack: Stack) -> None:
    rows = [RESEND, {**RESEND, "to": "not an address"}]
    status, body = stack.request("POST", "/emails/batch", rows)
    assert status == 422
    resend_shape(body, 422, "validation_error")
    assert stack.queue_messages() == []  # strict: nothing was accepted
    status, body = stack.request("POST", "/emails/batch", rows, headers={"x-batch-validation": "permissive"})
    assert status == 200, body
    assert len(body["data"]) == 1
    assert [error["index"] for error in body["errors"]] == [1]


@pytest.mark.parametrize(
    ("method", "path", "headers", "key", "status"),
    [
        ("GET", "/v3/mail/send", {}, "default", 405),
        ("POST", "/v3/templates", {}, "default", 404),
        ("POST", "/v3/mail/send", {"Content-Type": "text/plain"}, "default", 415),
        ("POST", "/v3/mail/send", {}, None, 401),
        ("POST", "/v3/mail/send", {}, "not-a-key", 401),
    ],
)
def test_every_sendgrid_answer_has_sendgrids_error_body(
    stack: Stack, method: str, path: str, headers: dict[str, str], key: str | None, status: int
) -> None:
    got, body = stack.request(method, path, SENDGRID if method == "POST" else None, key=key, headers=headers)
    assert got == status, body
    [error] = body["errors"]
    assert set(error) == {"message", "field", "help"}
    assert body["error"]["code"]
