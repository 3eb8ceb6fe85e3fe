"""Open and click tracking and one-click unsubscribe: links are added only when asked for, are HMAC-signed, and the
public routes record events, redirect to the original URL only, and suppress per sending domain and topic."""

from __future__ import annotations

import base64
import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import boto3

from postroom.accept.mime_build import build_message, render
from postroom.accept.models import SendRequest
from postroom.core.clock import parse_iso
from tests.events.conftest import EventsStack

HTML = (
    '<html><body><p>Hi! <a href="https://shop.example/orders/1?a=1&amp;b=2">your order</a>, '
    "<a href='mailto:help@shop.example'>help</a>, <a href=\"#top\">top</a></p></body></html>"
)
MESSAGE = {
    "from": "orders@smtp.example",
    "to": ["ann@example.org"],
    "subject": "Order",
    "text": "See https://shop.example/orders/1",
    "html": HTML,
}


def stored(events_stack: EventsStack, msg_id: str) -> tuple[bytes, EmailMessage]:
    bucket = events_stack.stack.resources["BodiesBucket"]["Ref"]
    raw = boto3.client("s3").get_object(Bucket=bucket, Key=f"messages/{msg_id}/message.eml")["Body"].read()
    return raw, message_from_bytes(raw, policy=policy.default)


def public(events_stack: EventsStack, method: str, url: str) -> tuple[int, dict]:
    path = url.removeprefix("http://links.postroom.test")
    return events_stack.call(method, path, key=None, function="TrackingFunction")


def test_without_tracking_the_message_is_exactly_the_plain_build(events_stack: EventsStack) -> None:
    msg_id = events_stack.send(MESSAGE)
    events_stack.deliver()
    raw, _ = stored(events_stack, msg_id)
    record = events_stack.record(msg_id)
    request = SendRequest.model_validate(MESSAGE)
    plain = render(build_message(request, message_id=record["message_id_header"], date=parse_iso(record["created_at"])))
    # identical but for the random MIME boundaries
    assert re.sub(rb"={15}\d+==", b"B", raw) == re.sub(rb"={15}\d+==", b"B", plain)
    assert b"/t/" not in raw
    assert b"List-Unsubscribe" not in raw


def test_clicks_and_opens_are_tracked_through_signed_links(events_stack: EventsStack) -> None:
    # GIVEN a message with click and open tracking
    msg_id = events_stack.send({**MESSAGE, "track_clicks": True, "track_opens": True})
    events_stack.deliver()
    _, mail = stored(events_stack, msg_id)
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    # THEN the HTML's web link goes through a signed redirect; mailto and anchors, and the text part, are untouched
    (click,) = re.findall(r'href="(http://links\.postroom\.test/t/c/[^"]+)"', html)
    assert "href='mailto:help@shop.example'" in html
    assert 'href="#top"' in html
    assert "https://shop.example/orders/1" in text
    (pixel,) = re.findall(r'<img src="(http://links\.postroom\.test/t/o/[^"]+)"', html)
    assert html.index(pixel) < html.index("</body>")
    # WHEN the recipient follows the link and loads the pixel
    status, answer = public(events_stack, "GET", click)
    # THEN the click redirects to exactly the original URL, the pixel is a GIF, and both are events
    assert status == 302
    assert answer["headers"]["Location"] == "https://shop.example/orders/1?a=1&b=2"
    event = events_stack.functions["TrackingFunction"].invoke(
        {
            "httpMethod": "GET",
            "path": pixel.removeprefix("http://links.postroom.test"),
            "headers": {"User-Agent": "MailClient/1"},
            "requestContext": {"identity": {"sourceIp": "127.0.0.1"}, "stage": "public"},
            "resource": "/t/o/{token}",
        }
    )
    content_type = (event.get("multiValueHeaders") or {}).get("Content-Type", [None])[-1]
    assert (event["statusCode"], content_type, event["isBase64Encoded"]) == (200, "image/gif", True)
    assert base64.b64decode(event["body"]).startswith(b"GIF89a")
    timeline = events_stack.timeline(msg_id)["data"]
    opened = next(e for e in timeline if e["type"] == "opened")
    clicked = next(e for e in timeline if e["type"] == "clicked")
    assert clicked["details"]["url"] == "https://shop.example/orders/1?a=1&b=2"
    assert (clicked["recipient"], opened["recipient"], opened["details"]["user_agent"]) == (
        "ann@example.org",
        "ann@example.org",
        "MailClient/1",
    )
    # a link whose token was altered leads nowhere
    token = click.rsplit("/", 1)[1]
    forged = click.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert public(events_stack, "GET", forged)[0] == 404
    assert public(events_stack, "GET", click.replace("/t/c/", "/t/u/"))[0] == 404  # not an unsubscribe token


def test_one_click_unsubscribe_suppresses_that_domain_and_topic_only(events_stack: EventsStack) -> None:
    # GIVEN a newsletter with one-click unsubscribe
    msg_id = events_stack.send({**MESSAGE, "list_unsubscribe": True, "topic": "newsletter"})
    events_stack.deliver()
    raw, mail = stored(events_stack, msg_id)
    link = mail["List-Unsubscribe"].strip("<>")
    assert f"\r\nList-Unsubscribe: <{link}>\r\n".encode() in raw  # one line: no encoded words, no folding
    assert link.startswith("http://links.postroom.test/t/u/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # WHEN a link scanner GETs the link, nothing happens; the mailbox provider's POST (RFC 8058) unsubscribes
    status, page = public(events_stack, "GET", link)
    assert status == 200
    assert "Unsubscribe" in page["text"]
    assert events_stack.get("/v1/suppressions")[1]["data"] == []
    assert public(events_stack, "POST", link)[0] == 200
    assert public(events_stack, "POST", link)[0] == 200  # a repeat changes nothing
    # THEN the address is suppressed for the newsletter topic of smtp.example, with one event
    (entry,) = events_stack.get("/v1/suppressions")[1]["data"]
    assert (entry["address"], entry["domain"], entry["topic"], entry["reason"]) == (
        "ann@example.org",
        "smtp.example",
        "newsletter",
        "unsubscribe",
    )
    assert [e["type"] for e in events_stack.timeline(msg_id)["data"]].count("unsubscribed") == 1
    # the next newsletter is suppressed; a receipt (no topic) still goes out
    newsletter = events_stack.send({**MESSAGE, "topic": "newsletter"})
    receipt = events_stack.send(MESSAGE)
    events_stack.deliver()
    assert events_stack.record(newsletter)["status"] == "suppressed"
    assert events_stack.record(receipt)["status"] == "delivered"


def test_one_click_unsubscribe_needs_a_single_recipient(events_stack: EventsStack) -> None:
    status, body = events_stack.call(
        "POST", "/v1/messages", {**MESSAGE, "to": ["a@example.org", "b@example.org"], "list_unsubscribe": True}
    )
    assert (status, body["error"]["code"]) == (422, "validation_error")
    assert "exactly one recipient" in body["error"]["message"]
