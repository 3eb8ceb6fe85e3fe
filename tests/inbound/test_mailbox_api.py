"""The mailbox API through the real handler against moto: paging, filters, keywords, moves, deletes, expunge, the
change log after each, and keys scoped to addresses."""

from __future__ import annotations

import base64

import boto3
import pytest

from postroom.core.auth import Scope
from postroom.mailbox.mailbox_store import mail_ulid
from postroom.wiring.services import services
from tests.inbound.conftest import Inbound, at, mailbox_key, make_mail

INBOX = "support@shop.example:inbox"


def entry(n: int, **extra: object) -> dict:
    """An index entry as the filer writes it (the store is exercised for real; parsing is not the point here)."""
    received = at(n)
    return {
        "id": "eml_" + mail_ulid(int(received.timestamp() * 1000), "bulk", str(n)),
        "receipt": f"bulk{n}",
        "recipient": "support@shop.example",
        "address": "support@shop.example",
        "received_at": received.isoformat(),
        "size": 100 + n,
        "subject": f"Message {n}",
        "from": [{"name": "Ann", "email": "ann@example.org"}],
        "to": [{"name": "", "email": "support@shop.example"}],
        "cc": [],
        "has_attachments": n % 10 == 0,
        "keywords": [],
        "preview": f"text {n}",
        "flags": [],
        "origin": "ses",
        "from_search": "ann <ann@example.org>",
        "to_search": " <support@shop.example>",
        "subject_search": f"message {n}",
        **extra,
    }


def fill(inbound: Inbound, count: int, *, bulk: bool = False) -> list[str]:
    """``count`` messages, one a minute: received through the inbound function (each filed in its own transaction),
    or bulk-loaded (moto copies the whole table for every transaction, so thousands of transactional filings would
    take minutes here - not on DynamoDB)."""
    store = inbound.store
    store.create_address("support@shop.example")
    if bulk:
        items = [entry(n) for n in range(count)]
        store.import_messages(INBOX, items)
        return [item["id"] for item in items]
    ids = []
    for n in range(count):
        result = inbound.receive(make_mail(f"Message {n}"), ["support@shop.example"], received_at=at(n))
        ids.append(result["messages"][0]["filed"][0]["id"])
    return ids


def page_all(inbound: Inbound, query: str = "", limit: int = 50) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor = None
    calls = 0
    while True:
        q = f"limit={limit}" + (f"&{query}" if query else "") + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages", query=q)
        assert status == 200, page
        calls += 1
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, calls


def changes(inbound: Inbound, since: str, box: str = INBOX) -> dict:
    status, body, _ = inbound.call("GET", f"/v1/mailboxes/{box}/changes", query=f"since={since}")
    assert status == 200, body
    return body


def test_paging_1050_messages_returns_each_exactly_once_newest_first(inbound: Inbound) -> None:
    # GIVEN 1050 messages in one Inbox
    ids = fill(inbound, 1050, bulk=True)
    # WHEN it is paged 50 at a time
    seen, calls = page_all(inbound)
    # THEN every message comes exactly once, newest first, in 21 full pages and no empty trailing page
    assert seen == list(reversed(ids))
    assert calls == 21
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    # a bulk load reserves one state step per message: each is a message's uid, in received order
    assert (box["total"], box["unread"], box["state"], box["uidnext"]) == (1050, 1050, "1050", 1051)
    status, first, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages", query="limit=3")
    assert [m["uid"] for m in first["messages"]] == [1050, 1049, 1048]
    # and a client that synced before the bulk load is told to list again instead of getting 1050 ids
    status, body, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/changes", query="since=0")
    assert status == 410
    assert body["error"]["code"] == "cannot_calculate_changes"


def test_filters_narrow_pages_and_every_match_comes_once(inbound: Inbound) -> None:
    # GIVEN 120 messages: every 10th has an attachment, one has a distinctive subject, one another sender
    ids = fill(inbound, 120, bulk=True)
    inbound.store.set_keywords(ids[7], ["$flagged", "$seen"], [])
    # WHEN filtering
    with_files, _ = page_all(inbound, "has_attachment=true", limit=5)
    flagged, _ = page_all(inbound, "flagged=true", limit=5)
    unread, _ = page_all(inbound, "unread=true", limit=50)
    by_subject, _ = page_all(inbound, "subject=MESSAGE%2011", limit=5)
    window, _ = page_all(inbound, "since=2024-05-01T00:10:00Z&before=2024-05-01T00:20:00Z", limit=3)
    nobody, _ = page_all(inbound, "from=bob@", limit=5)
    # THEN each returns exactly the matching messages, newest first
    assert with_files == [ids[n] for n in range(110, -1, -10)]
    assert flagged == [ids[7]]
    assert len(unread) == 119
    assert ids[7] not in unread
    assert by_subject == [
        ids[119],
        ids[118],
        ids[117],
        ids[116],
        ids[115],
        ids[114],
        ids[113],
        ids[112],
        ids[111],
        ids[110],
        ids[11],
    ]
    assert window == [ids[n] for n in range(19, 9, -1)]
    assert nobody == []


def test_cursor_from_another_listing_is_refused(inbound: Inbound) -> None:
    fill(inbound, 5)
    _, page, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages", query="limit=2")
    status, body, _ = inbound.call(
        "GET", f"/v1/mailboxes/{INBOX}/messages", query=f"limit=2&unread=true&cursor={page['next_cursor']}"
    )
    assert status == 400
    assert body["error"]["code"] == "invalid_cursor"


def test_keywords_move_delete_expunge_and_the_changes_after_each(inbound: Inbound) -> None:
    # GIVEN three messages and the state a client saw
    a, b, c = fill(inbound, 3)
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    assert box["state"] == "3"
    assert changes(inbound, "0")["created"] == [a, b, c]
    # WHEN one is marked seen and flagged, with a custom keyword
    status, updated, _ = inbound.call(
        "PATCH", f"/v1/mail/{a}", {"keywords": {"$seen": True, "$flagged": True, "Invoiced": True}}
    )
    assert status == 200, updated
    assert updated["keywords"] == ["$flagged", "$seen", "invoiced"]
    # THEN the counts and the changes say so
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    assert (box["total"], box["unread"]) == (3, 2)
    delta = changes(inbound, "3")
    assert (delta["created"], delta["updated"], delta["destroyed"], delta["new_state"]) == ([], [a], [], "4")
    # WHEN a keyword is cleared
    inbound.call("PATCH", f"/v1/mail/{a}", {"keywords": {"$flagged": False}})
    assert changes(inbound, "4")["updated"] == [a]
    # WHEN one is moved to Archive
    status, moved, _ = inbound.call("PATCH", f"/v1/mail/{b}", {"mailbox": "support@shop.example:archive"})
    assert status == 200
    assert moved["mailbox"] == "support@shop.example:archive"
    assert changes(inbound, "5")["destroyed"] == [b]
    assert changes(inbound, "0", "support@shop.example:archive")["created"] == [b]
    # and its id still works
    status, document, _ = inbound.call("GET", f"/v1/mail/{b}")
    assert status == 200
    assert document["mailbox"] == "support@shop.example:archive"
    # WHEN one is deleted: it goes to Trash
    status, trashed, _ = inbound.call("DELETE", f"/v1/mail/{c}")
    assert status == 200
    assert trashed["mailbox"] == "support@shop.example:trash"
    assert changes(inbound, "6")["destroyed"] == [c]
    # WHEN it is deleted again from Trash: expunged for good
    status, body, _ = inbound.call("DELETE", f"/v1/mail/{c}")
    assert status == 204, body
    trash = changes(inbound, "0", "support@shop.example:trash")
    assert (trash["created"], trash["destroyed"]) == ([], [])  # created and destroyed within the range: nothing
    assert changes(inbound, "1", "support@shop.example:trash")["destroyed"] == [c]
    status, _, _ = inbound.call("GET", f"/v1/mail/{c}")
    assert status == 404
    # WHEN a flagged-deleted message is expunged from the Inbox (IMAP: STORE +FLAGS \\Deleted, then EXPUNGE)
    inbound.call("PATCH", f"/v1/mail/{a}", {"keywords": {"$deleted": True}})
    status, result, _ = inbound.call("POST", f"/v1/mailboxes/{INBOX}/expunge", {})
    assert status == 200, result
    assert result["expunged"] == [a]
    # THEN the whole history folds into one answer for a client that last synced at 3
    delta = changes(inbound, "3")
    assert (delta["created"], delta["updated"], delta["destroyed"]) == ([], [], [a, b, c])
    assert delta["new_state"] == result["state"]
    assert not delta["has_more"]
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    assert (box["total"], box["unread"]) == (0, 0)


def test_changes_paged_and_states_that_cannot_be_computed(inbound: Inbound) -> None:
    fill(inbound, 5)
    _, first, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/changes", query="since=0&limit=2")
    assert (first["created"], first["new_state"], first["has_more"]) == (first["created"], "2", True)
    rest = changes(inbound, first["new_state"])
    assert len(first["created"] + rest["created"]) == 5
    assert not rest["has_more"]
    status, body, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/changes", query="since=99")
    assert status == 410
    assert body["error"]["code"] == "cannot_calculate_changes"


def test_custom_mailboxes_are_listed_with_counts(inbound: Inbound) -> None:
    (a,) = fill(inbound, 1)
    status, custom, _ = inbound.call("POST", "/v1/mailboxes", {"address": "support@shop.example", "name": "Invoices"})
    assert status == 201, custom
    inbound.call("PATCH", f"/v1/mail/{a}", {"mailbox": custom["id"]})
    _, listed, _ = inbound.call("GET", "/v1/mailboxes", query="address=support@shop.example")
    assert [(m["name"], m["role"], m["total"], m["unread"]) for m in listed["mailboxes"]] == [
        ("Inbox", "inbox", 0, 0),
        ("Drafts", "drafts", 0, 0),
        ("Sent", "sent", 0, 0),
        ("Junk", "junk", 0, 0),
        ("Archive", "archive", 0, 0),
        ("Trash", "trash", 0, 0),
        ("Invoices", None, 1, 1),
    ]
    status, _, _ = inbound.call("POST", "/v1/mailboxes", {"address": "support@shop.example", "name": "invoices"})
    assert status == 409
    status, _, _ = inbound.call("DELETE", f"/v1/mailboxes/{custom['id']}")
    assert status == 409  # not empty


def test_a_key_for_one_address_cannot_reach_another(inbound: Inbound) -> None:
    # GIVEN mail for support@ and billing@, and a key that may read support@ only
    for address in ("support@shop.example", "billing@shop.example"):
        inbound.store.create_address(address)
        inbound.receive(make_mail(f"for {address}", to=address), [address])
    support_key = mailbox_key("support@shop.example", scopes=frozenset({Scope.MAILBOX_READ}))
    _, billing, _ = inbound.call("GET", "/v1/mailboxes/billing@shop.example:inbox/messages")
    billing_id = billing["messages"][0]["id"]
    # THEN billing's mailboxes are 403, its message 404 (as if it did not exist), and listings leave it out
    status, body, _ = inbound.call("GET", "/v1/mailboxes/billing@shop.example:inbox/messages", key=support_key)
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    status, _, _ = inbound.call("GET", f"/v1/mail/{billing_id}", key=support_key)
    assert status == 404
    status, _, _ = inbound.call("GET", f"/v1/mail/{billing_id}/raw", key=support_key)
    assert status == 404
    _, listed, _ = inbound.call("GET", "/v1/mailboxes", key=support_key)
    assert {m["address"] for m in listed["mailboxes"]} == {"support@shop.example"}
    # and support@ is readable, but not writable with a read-only key
    status, own, _ = inbound.call("GET", "/v1/mailboxes/support@shop.example:inbox/messages", key=support_key)
    assert status == 200
    assert len(own["messages"]) == 1
    status, body, _ = inbound.call(
        "PATCH", f"/v1/mail/{own['messages'][0]['id']}", {"keywords": {"$seen": True}}, key=support_key
    )
    assert status == 403
    assert "mailbox:write" in body["error"]["message"]
    # and a domain-wide key reaches both
    domain_key = mailbox_key("*@shop.example")
    status, _, _ = inbound.call("GET", f"/v1/mail/{billing_id}", key=domain_key)
    assert status == 200


def test_percent_encoded_mailbox_ids_work(inbound: Inbound) -> None:
    fill(inbound, 1)
    status, page, _ = inbound.call("GET", "/v1/mailboxes/support%40shop.example%3Ainbox/messages")
    assert status == 200, page
    assert page["mailbox"] == INBOX
    assert len(page["messages"]) == 1


@pytest.mark.parametrize("path", ["/v1/mailboxes/not-a-mailbox/messages", "/v1/mail/eml_nope"])
def test_malformed_ids_are_client_errors(inbound: Inbound, path: str) -> None:
    status, body, _ = inbound.call("GET", path)
    assert status in (404, 422), body


def test_uids_grow_with_arrival_and_stay_put_while_flags_change(inbound: Inbound) -> None:
    # GIVEN three messages received one after another
    first, second, third = fill(inbound, 3)
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    _, page, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages")
    uids = {m["id"]: m["uid"] for m in page["messages"]}
    # THEN each has a uid, growing with arrival, and UIDNEXT is above them all
    assert uids[first] < uids[second] < uids[third]
    assert box["uidnext"] > uids[third]
    assert box["uidvalidity"] > 0
    # WHEN one is flagged, its modseq moves on and its uid does not
    _, flagged, _ = inbound.call("PATCH", f"/v1/mail/{second}", {"keywords": {"$flagged": True}})
    _, after_flag, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    assert after_flag["uidnext"] == box["uidnext"]  # UIDNEXT moves only when a message comes in
    assert flagged["uid"] == uids[second]
    assert int(flagged["modseq"]) > uids[second]
    # WHEN it moves to Archive and back, it gets a new uid each time, above every uid the mailbox had given
    inbound.call("PATCH", f"/v1/mail/{second}", {"mailbox": "support@shop.example:archive"})
    _, back, _ = inbound.call("PATCH", f"/v1/mail/{second}", {"mailbox": INBOX})
    assert back["uid"] > uids[third]
    _, again, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    assert again["uidvalidity"] == box["uidvalidity"]
    assert again["uidnext"] > back["uid"]


def test_copy_files_a_second_message_sharing_the_stored_mime(inbound: Inbound) -> None:
    # GIVEN a message in the Inbox with a keyword
    (original,) = fill(inbound, 1)
    inbound.call("PATCH", f"/v1/mail/{original}", {"keywords": {"$seen": True}})
    _, before, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages")
    # WHEN it is copied to Archive
    status, copy, _ = inbound.call("POST", f"/v1/mail/{original}/copy", {"mailbox": "support@shop.example:archive"})
    # THEN the copy is a new message there, with the same received time, keywords and content
    assert status == 201, copy
    assert copy["id"] != original
    assert copy["mailbox"] == "support@shop.example:archive"
    assert copy["received_at"] == before["messages"][0]["received_at"]
    assert copy["keywords"] == ["$seen"]
    assert copy["id"][4:14] == original[4:14]  # the ULID's time part: it sorts where the original does
    _, original_doc, _ = inbound.call("GET", f"/v1/mail/{original}")
    _, copy_doc, _ = inbound.call("GET", f"/v1/mail/{copy['id']}")
    assert copy_doc["text"] == original_doc["text"]
    # and expunging the original leaves the copy readable: the stored MIME is shared, counted by references
    inbound.call("DELETE", f"/v1/mail/{original}")  # to Trash
    status, _, _ = inbound.call("DELETE", f"/v1/mail/{original}")  # expunged
    assert status == 204
    _, still, _ = inbound.call("GET", f"/v1/mail/{copy['id']}")
    assert still["text"] == original_doc["text"]
    receipt = inbound.store.message("support@shop.example:archive", copy["id"])["receipt"]
    assert inbound.store.receipt(receipt)["refs"] == 1


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [("support@shop.example:nosuch", 404, "not_found"), ("desk@help.example:inbox", 409, "conflict")],
)
def test_copy_refuses_unknown_and_foreign_mailboxes(inbound: Inbound, target: str, status: int, code: str) -> None:
    (original,) = fill(inbound, 1)
    inbound.store.create_address("desk@help.example")
    answer, body, _ = inbound.call("POST", f"/v1/mail/{original}/copy", {"mailbox": target})
    assert answer == status, body
    assert body["error"]["code"] == code


def test_append_stores_a_message_with_its_flags_and_date_and_drafts_are_replaced(inbound: Inbound) -> None:
    # GIVEN an address with its Sent and Drafts
    inbound.store.create_address("support@shop.example")
    sent, drafts = "support@shop.example:sent", "support@shop.example:drafts"
    raw = make_mail("Re: your order", sender="support@shop.example", to="ann@example.org")
    # WHEN a client appends its sent copy, seen and dated
    body = {"raw": base64.b64encode(raw).decode(), "keywords": ["$Seen"], "received_at": "2026-01-02T03:04:05Z"}
    status, stored, _ = inbound.call("POST", f"/v1/mailboxes/{sent}/messages", body)
    # THEN it is listed there with those, and reads back byte for byte
    assert status == 201, stored
    assert (stored["subject"], stored["keywords"], stored["uid"]) == ("Re: your order", ["$seen"], 1)
    assert stored["received_at"].startswith("2026-01-02T03:04:05")
    _, page, _ = inbound.call("GET", f"/v1/mailboxes/{sent}/messages")
    assert [m["id"] for m in page["messages"]] == [stored["id"]]
    # AND the same message appended again (submission filed it, then the client saved its own copy) is not doubled
    status, again, _ = inbound.call("POST", f"/v1/mailboxes/{sent}/messages", body)
    assert (status, again["id"], again["uid"]) == (201, stored["id"], 1)
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{sent}")
    assert (box["total"], box["unread"], box["uidnext"]) == (1, 0, 2)
    status, _, _ = inbound.call("GET", f"/v1/mail/{stored['id']}/raw")
    assert status == 302
    receipt = inbound.store.message(sent, stored["id"])["receipt"]
    assert boto3.client("s3").get_object(Bucket=inbound.bucket, Key=f"inbound/{receipt}")["Body"].read() == raw
    # WHEN a draft is saved twice, the client replacing the first (append, flag the old one, expunge it)
    first = _append(inbound, drafts, make_mail("Draft v1"), ["$draft"])
    second = _append(inbound, drafts, make_mail("Draft v2"), ["$draft"])
    inbound.call("PATCH", f"/v1/mail/{first['id']}", {"keywords": {"$deleted": True}})
    status, done, _ = inbound.call("POST", f"/v1/mailboxes/{drafts}/expunge", {"ids": [first["id"]]})
    # THEN only the second draft is left, with a higher uid
    assert status == 200
    assert done["expunged"] == [first["id"]]
    _, page, _ = inbound.call("GET", f"/v1/mailboxes/{drafts}/messages")
    assert [(m["subject"], m["keywords"]) for m in page["messages"]] == [("Draft v2", ["$draft"])]
    assert second["uid"] > first["uid"]


def test_append_refuses_what_is_not_a_message_or_not_the_keys_to_write(inbound: Inbound) -> None:
    inbound.store.create_address("support@shop.example")
    inbound.store.create_address("billing@shop.example")
    sent = "support@shop.example:sent"
    for body, field in (
        ({"raw": "not base64!"}, "raw"),
        ({"raw": base64.b64encode(b"x").decode(), "keywords": ["bad keyword"]}, "keywords"),
        ({"raw": base64.b64encode(b"x").decode(), "received_at": "2026-01-02T03:04:05"}, "received_at"),
    ):
        status, answer, _ = inbound.call("POST", f"/v1/mailboxes/{sent}/messages", body)
        assert status in (400, 422), answer
        assert field in (answer["error"]["field"] or "") + answer["error"]["message"]
    reader = mailbox_key("support@shop.example", scopes=frozenset({Scope.MAILBOX_READ}))
    body = {"raw": base64.b64encode(make_mail("x")).decode()}
    status, answer, _ = inbound.call("POST", f"/v1/mailboxes/{sent}/messages", body, key=reader)
    assert status == 403, answer
    other = mailbox_key("billing@shop.example")
    status, answer, _ = inbound.call("POST", f"/v1/mailboxes/{sent}/messages", body, key=other)
    assert status == 403, answer
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{sent}")
    assert box["total"] == 0


def test_an_address_from_before_sent_and_drafts_gets_them_on_its_next_listing(inbound: Inbound) -> None:
    # GIVEN an address whose Drafts, Sent and Junk were never created (registered by an earlier version)
    store = inbound.store
    store.create_address("support@shop.example")
    for key in ("drafts", "sent", "junk"):
        boto3.client("dynamodb").delete_item(
            TableName=services().settings.table,
            Key={"pk": {"S": "ADDR#support@shop.example"}, "sk": {"S": f"MBX#{key}"}},
        )
    # WHEN its mailboxes are listed
    _, listed, _ = inbound.call("GET", "/v1/mailboxes", query="address=support@shop.example")
    # THEN they are there, and stay (a second listing finds the same, with the same uidvalidity)
    roles = {m["role"]: m["uidvalidity"] for m in listed["mailboxes"]}
    assert set(roles) == {"inbox", "drafts", "sent", "junk", "archive", "trash"}
    _, again, _ = inbound.call("GET", "/v1/mailboxes", query="address=support@shop.example")
    assert {m["role"]: m["uidvalidity"] for m in again["mailboxes"]} == roles


def _append(inbound: Inbound, box: str, raw: bytes, keywords: list[str]) -> dict:
    body = {"raw": base64.b64encode(raw).decode(), "keywords": keywords}
    status, stored, _ = inbound.call("POST", f"/v1/mailboxes/{box}/messages", body)
    assert status == 201, stored
    return stored


def test_a_conditional_keyword_change_holds_only_while_the_message_is_unchanged(inbound: Inbound) -> None:
    # GIVEN a message at some modseq
    (a,) = fill(inbound, 1)
    _, item, _ = inbound.call("GET", f"/v1/mail/{a}")
    seen_at = item["modseq"]
    # WHEN it is changed, then a change conditioned on the old modseq is asked for
    status, changed, _ = inbound.call("PATCH", f"/v1/mail/{a}", {"keywords": {"$flagged": True}})
    assert status == 200, changed
    status, answer, _ = inbound.call(
        "PATCH", f"/v1/mail/{a}", {"keywords": {"$seen": True}, "unchanged_since": seen_at}
    )
    # THEN it is refused as modified, and nothing changed
    assert status == 412, answer
    assert (answer["error"]["code"], answer["error"]["field"]) == ("modified", "unchanged_since")
    _, now, _ = inbound.call("GET", f"/v1/mail/{a}")
    assert now["keywords"] == ["$flagged"]
    # AND conditioned on the current modseq it goes through
    status, done, _ = inbound.call(
        "PATCH", f"/v1/mail/{a}", {"keywords": {"$seen": True}, "unchanged_since": changed["modseq"]}
    )
    assert status == 200, done
    assert done["keywords"] == ["$flagged", "$seen"]


def test_changes_name_the_uids_of_destroyed_messages(inbound: Inbound) -> None:
    a, b = fill(inbound, 2)
    _, box, _ = inbound.call("GET", f"/v1/mailboxes/{INBOX}")
    uids = {m["id"]: m["uid"] for m in inbound.call("GET", f"/v1/mailboxes/{INBOX}/messages")[1]["messages"]}
    inbound.call("PATCH", f"/v1/mail/{a}", {"mailbox": "support@shop.example:archive"})
    inbound.call("PATCH", f"/v1/mail/{b}", {"keywords": {"$deleted": True}})
    inbound.call("POST", f"/v1/mailboxes/{INBOX}/expunge", {})
    found = changes(inbound, box["state"])
    assert sorted(found["destroyed"]) == sorted([a, b])
    assert found["destroyed_uids"] == sorted([uids[a], uids[b]])
