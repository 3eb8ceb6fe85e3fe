"""``GET /v1/messages`` (the console's Activity) and the console's public files, through the real send API handler
against moto: newest first, cursor paging, the filters, tenants and scopes, and the bounded read per page."""

from __future__ import annotations

from typing import Any

from postroom.api.console_routes import is_public
from postroom.core.auth import Scope
from postroom.core.message_store import MessageFilter
from postroom.wiring.services import services
from tests.conftest import Stack, create_key


def send(stack: Stack, to: str, subject: str, *, sender: str = "orders@shop.example", **extra: Any) -> str:
    status, body = stack.request(
        "POST", "/v1/messages", {"from": sender, "to": [to], "subject": subject, "text": "hi", **extra}
    )
    assert status == 202, body
    return str(body["id"])


def listing(stack: Stack, query: str = "", key: str = "default") -> tuple[int, dict[str, Any]]:
    return stack.request("GET", "/v1/messages", query=query, key=key)


def test_lists_newest_first_and_cursor_pages_cover_everything_once(stack: Stack) -> None:
    # GIVEN five messages sent one after the other
    ids = [send(stack, f"r{i}@example.org", f"Order {i}") for i in range(5)]
    # WHEN they are listed two at a time, following `next`
    seen: list[str] = []
    query = "limit=2"
    while True:
        status, page = listing(stack, query)
        assert status == 200, page
        seen += [m["id"] for m in page["data"]]
        if page["next"] is None:
            break
        query = f"limit=2&cursor={page['next']}"
    # THEN every message appears exactly once, newest first
    assert seen == list(reversed(ids))


def test_filters_by_recipient_sender_tag_status_text_and_date(stack: Stack) -> None:
    ann = send(stack, "ann@example.org", "Your invoice", tags=["invoice"])
    bob = send(stack, "bob@example.org", "Shipping update", sender="ship@shop.example")
    assert [m["id"] for m in listing(stack, "recipient=ANN@example.org")[1]["data"]] == [ann]
    assert [m["id"] for m in listing(stack, "sender=ship@shop.example")[1]["data"]] == [bob]
    assert [m["id"] for m in listing(stack, "tag=invoice")[1]["data"]] == [ann]
    assert [m["id"] for m in listing(stack, "q=shipping")[1]["data"]] == [bob]
    assert [m["id"] for m in listing(stack, "q=bob%40")[1]["data"]] == [bob]
    assert listing(stack, "status=delivered")[1]["data"] == []
    assert len(listing(stack, "status=queued")[1]["data"]) == 2
    assert listing(stack, "until=2000-01-01")[1]["data"] == []
    assert len(listing(stack, "since=2000-01-01&until=2999-12-31")[1]["data"]) == 2
    # A summary carries what Activity shows, not the whole record.
    row = listing(stack, "tag=invoice")[1]["data"][0]
    assert row["to"] == ["ann@example.org"]
    assert row["subject"] == "Your invoice"
    assert row["status"] == "queued"


def test_another_tenants_messages_are_not_listed(stack: Stack) -> None:
    send(stack, "ann@example.org", "Mine")
    other = create_key(frozenset({Scope.MESSAGES_READ}), tenant="other")
    status, page = listing(stack, key=other)
    assert status == 200
    assert page == {"data": [], "next": None}


def test_scope_cursor_and_filter_errors_are_structured(stack: Stack) -> None:
    send_only = create_key(frozenset({Scope.MESSAGES_SEND}))
    status, body = listing(stack, key=send_only)
    assert status == 403
    assert body["error"]["field"] == "Authorization"
    status, body = listing(stack, "cursor=bm90LWEtY3Vyc29y")
    assert status == 422
    assert body["error"]["field"] == "cursor"
    status, body = listing(stack, "status=lost")
    assert status == 422
    assert body["error"]["code"]
    status, body = listing(stack, key=None)
    assert status == 401


def test_a_page_reads_a_bounded_slice_of_the_index_and_continues_from_there(stack: Stack) -> None:
    # GIVEN one match under four newer messages that do not match
    match = send(stack, "needle@example.org", "Old")
    for i in range(4):
        send(stack, f"hay{i}@example.org", "New")
    store = services().messages
    where = MessageFilter(recipient="needle@example.org")
    # WHEN a page may read only three index items
    first = store.list_page("default", where, limit=10, budget=3)
    # THEN it stops there with a cursor instead of reading on, and the next page finds the match
    assert first.records == []
    assert first.next_cursor is not None
    second = store.list_page("default", where, limit=10, cursor=first.next_cursor, budget=3)
    assert [r.id for r in second.records] == [match]
    assert second.next_cursor is None


def test_console_files_are_public_only_for_get_of_exactly_their_paths(stack: Stack) -> None:
    for method, path, public in [
        ("GET", "/console", True),
        ("GET", "/console/console.js", True),
        ("GET", "/console/console.css", True),
        ("GET", "/console/index.html", False),  # the page has one address
        ("GET", "/console/secrets.json", False),
        ("POST", "/console", False),
        ("GET", "/v1/messages", False),
    ]:
        assert is_public({"httpMethod": method, "path": path}) is public, (method, path)
    result = stack.send_api.invoke(_event("GET", "/console"))
    assert result["statusCode"] == 200
    headers = {name.lower(): values[0] for name, values in result["multiValueHeaders"].items()}
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["content-type"].startswith("text/html")
    assert '<script src="console/console.js"' in result["body"]
    # Anything else under /console still meets the gate first: no key, 401.
    assert stack.send_api.invoke(_event("GET", "/console/secrets.json"))["statusCode"] == 401
    assert stack.send_api.invoke(_event("POST", "/console"))["statusCode"] == 401


def _event(method: str, path: str) -> dict[str, Any]:
    from postroom.local.gateway import build_event

    return build_event(
        method=method,
        path=path,
        resource=path,
        query="",
        headers=[],
        body=b"",
        source_ip="127.0.0.1",
        path_parameters={},
        stage="api",
    )
