"""The inbound function against moto: SES-shaped events for MIME stored in S3, filed through the real handler."""

from __future__ import annotations

import boto3

from tests.inbound.conftest import Inbound, at, make_mail

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def inbox(inbound: Inbound, address: str) -> list[dict]:
    status, page, _ = inbound.call("GET", f"/v1/mailboxes/{address}:inbox/messages")
    assert status == 200, page
    return page["messages"]


def test_registered_address_gets_the_message_with_verdicts_and_index_fields(inbound: Inbound) -> None:
    # GIVEN a registered address
    inbound.store.create_address("support@shop.example")
    raw = make_mail("Order #1", html="<p>Hi <b>there</b></p>", attachments=[("invoice.pdf", PDF, "application/pdf")])
    # WHEN SES stores a message for it and invokes the inbound function
    result = inbound.receive(raw, ["support@shop.example"], verdict="PASS")
    # THEN it is filed once into the Inbox, with SES's verdicts and the listing fields
    assert [f["mailbox"] for f in result["messages"][0]["filed"]] == ["support@shop.example:inbox"]
    (message,) = inbox(inbound, "support@shop.example")
    assert message["subject"] == "Order #1"
    assert message["from"] == [{"name": "Ann", "email": "ann@example.org"}]
    assert message["has_attachments"] is True
    assert message["preview"] == "Hi there."
    assert message["verdicts"] == {"spam": "PASS", "virus": "PASS", "spf": "PASS", "dkim": "PASS", "dmarc": "PASS"}
    assert message["size"] == len(raw)
    assert message["keywords"] == []
    # and the raw MIME stays in S3 untouched
    obj = boto3.client("s3").get_object(Bucket=inbound.bucket, Key=f"inbound/{result['messages'][0]['receipt']}")
    assert obj["Body"].read() == raw


def test_plus_addressing_files_for_the_base_address_and_keeps_the_tag(inbound: Inbound) -> None:
    inbound.store.create_address("orders@shop.example")
    inbound.receive(make_mail("tagged"), ["Orders+1234@shop.example"])
    (message,) = inbox(inbound, "orders@shop.example")
    assert message["tag"] == "1234"
    assert message["recipient"] == "orders+1234@shop.example"
    assert message["address"] == "orders@shop.example"


def test_unknown_recipient_goes_to_the_catch_all_or_is_rejected(inbound: Inbound) -> None:
    # GIVEN help.example has a catch-all (desk) and shop.example has none
    inbound.store.create_address("support@shop.example")
    # WHEN one message goes to an unknown address at each domain and to a known one
    result = inbound.receive(make_mail("who?"), ["nobody@help.example", "nobody@shop.example", "support@shop.example"])[
        "messages"
    ][0]
    # THEN the catch-all gets its copy (flagged), the shop.example stranger is rejected, the known address is served
    assert sorted(f["mailbox"] for f in result["filed"]) == ["desk@help.example:inbox", "support@shop.example:inbox"]
    assert result["rejected"] == [
        {"recipient": "nobody@shop.example", "status": "5.1.1", "reason": "<nobody@shop.example>: no such mailbox here"}
    ]
    (caught,) = inbox(inbound, "desk@help.example")
    assert caught["recipient"] == "nobody@help.example"
    assert "catch_all" in caught["flags"]
    assert not inbound.store.address_exists("nobody@shop.example")


def test_the_catch_all_address_itself_works_before_anyone_registered_it(inbound: Inbound) -> None:
    result = inbound.receive(make_mail("to the desk"), ["desk@help.example"])
    assert [f["mailbox"] for f in result["messages"][0]["filed"]] == ["desk@help.example:inbox"]
    (message,) = inbox(inbound, "desk@help.example")
    assert "catch_all" not in message["flags"]


def test_a_message_nobody_may_receive_is_not_kept(inbound: Inbound) -> None:
    result = inbound.receive(make_mail("spam"), ["nobody@shop.example"], message_id="rejectedmessage0000000000000000")
    assert result["messages"][0]["filed"] == []
    listed = boto3.client("s3").list_objects_v2(Bucket=inbound.bucket).get("Contents", [])
    assert listed == []


def test_a_redelivered_ses_event_files_nothing_twice(inbound: Inbound) -> None:
    inbound.store.create_address("support@shop.example")
    raw = make_mail("once")
    # GIVEN the same SES event twice (Lambda retries an asynchronous invocation that failed after filing)
    for _ in range(2):
        inbound.receive(raw, ["support@shop.example"], message_id="samesesmessageid00000000000000", received_at=at(0))
    assert len(inbox(inbound, "support@shop.example")) == 1
    _, boxes, _ = inbound.call("GET", "/v1/mailboxes", query="address=support@shop.example")
    assert boxes["mailboxes"][0]["total"] == 1
    assert boxes["mailboxes"][0]["unread"] == 1


def test_malformed_mime_is_stored_and_flagged_never_dropped(inbound: Inbound) -> None:
    # GIVEN a multipart whose closing boundary never comes, with broken base64 and no From
    raw = (
        b"To: support@shop.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nstill readable\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="x.bin"\r\n\r\nAAEC!!!A\r\n'
    )
    inbound.store.create_address("support@shop.example")
    inbound.receive(raw, ["support@shop.example"])
    (message,) = inbox(inbound, "support@shop.example")
    assert {"multipart_unterminated", "invalid_base64", "missing_from"} <= set(message["flags"])
    status, document, _ = inbound.call("GET", f"/v1/mail/{message['id']}")
    assert status == 200
    assert document["text"] == "still readable"  # the line break before a boundary belongs to the boundary
    assert document["attachments"][0]["filename"] == "x.bin"


def test_parsed_document_keeps_all_headers_and_sanitized_html(inbound: Inbound) -> None:
    inbound.store.create_address("support@shop.example")
    html = '<p onclick="steal()">Hi<script>alert(1)</script><a href="javascript:x()">x</a><img src="cid:logo"></p>'
    inbound.receive(make_mail("html", html=html, headers={"X-Ticket": "42"}), ["support@shop.example"])
    (message,) = inbox(inbound, "support@shop.example")
    _, document, _ = inbound.call("GET", f"/v1/mail/{message['id']}")
    assert document["html"].strip() == html
    assert "script" not in document["html_sanitized"]
    assert "onclick" not in document["html_sanitized"]
    assert "javascript" not in document["html_sanitized"]
    assert 'src="cid:logo"' in document["html_sanitized"]
    assert {"name": "X-Ticket", "value": "42"} in document["headers"]


def test_hostile_and_huge_messages_are_filed_with_flags(inbound: Inbound) -> None:
    inbound.store.create_address("support@shop.example")
    # GIVEN a 12 MB attachment, raw UTF-8 headers, and a 5 000-deep multipart bomb
    big = bytes(range(256)) * (12 * 4096)
    inbound.receive(
        make_mail("big", attachments=[("big.bin", big, "application/octet-stream")]), ["support@shop.example"]
    )
    inbound.receive("From: Zoë <z@example.org>\r\nSubject: Grüße\r\n\r\nhallo\r\n".encode(), ["support@shop.example"])
    bomb = b"From: x@example.org\r\nSubject: bomb\r\n" + b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(5000)
    )
    inbound.receive(bomb, ["support@shop.example"])
    # THEN all three are filed, flagged for what they are, and the big attachment is stored whole
    by_subject = {m["subject"]: m for m in inbox(inbound, "support@shop.example")}
    assert set(by_subject) == {"big", "Grüße", "bomb"}
    assert by_subject["Grüße"]["from"] == [{"name": "Zoë", "email": "z@example.org"}]
    assert "eight_bit_headers" in by_subject["Grüße"]["flags"]
    assert "mime_depth_exceeded" in by_subject["bomb"]["flags"]
    assert by_subject["bomb"]["size"] == len(bomb)
    _, document, _ = inbound.call("GET", f"/v1/mail/{by_subject['big']['id']}")
    (attachment,) = document["attachments"]
    assert attachment["size"] == len(big)
    receipt = inbound.store.locate(by_subject["big"]["id"])["receipt"]
    stored = boto3.client("s3").get_object(Bucket=inbound.bucket, Key=f"parsed/{receipt}/parts/{attachment['part']}")
    assert stored["Body"].read() == big
