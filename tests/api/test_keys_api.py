"""``/v1/keys`` through the real send API handler against moto: create with limits, list without secrets, disable,
rotate with a grace period (issue 19 item 2)."""

from __future__ import annotations

from datetime import timedelta

import boto3

from postroom.core.auth import Scope
from postroom.core.key_store import ApiKeyStore
from postroom.wiring.services import services
from tests.conftest import Stack, create_key

MESSAGE = {"from": "orders@shop.example", "to": ["ann@example.org"], "subject": "Hi", "text": "Hello"}


def _store_at(offset: timedelta) -> ApiKeyStore:
    """The same key table read by a store whose clock is ``offset`` from now: the moment after a grace period,
    without waiting for it."""
    now = services().keys.now()
    return ApiKeyStore(boto3.client("dynamodb"), services().settings.table, clock=lambda: now + offset)


def test_a_created_key_has_its_scopes_and_sending_domains_and_is_never_listed_with_its_secret(stack: Stack) -> None:
    # GIVEN an admin key  WHEN it creates a send-only key limited to shop.example
    status, created = stack.request(
        "POST", "/v1/keys", {"name": "shop", "scopes": ["messages:send"], "sending_domains": ["Shop.Example"]}
    )
    assert status == 201, created
    secret, key_id = created["key"], created["id"]
    assert created["scopes"] == ["messages:send"]
    assert created["sending_domains"] == ["shop.example"]
    # THEN the key sends from shop.example, is refused for smtp.example, and lacks every other scope
    assert stack.request("POST", "/v1/messages", MESSAGE, key=secret)[0] == 202
    status, refused = stack.request("POST", "/v1/messages", {**MESSAGE, "from": "a@smtp.example"}, key=secret)
    assert status == 403, refused
    assert refused["error"]["field"] == "from", refused
    assert "smtp.example" in refused["error"]["message"]
    assert stack.request("GET", "/v1/keys", key=secret)[0] == 403
    # AND the listing shows it without any secret
    status, listing = stack.request("GET", "/v1/keys")
    assert status == 200
    assert key_id in [k["id"] for k in listing["data"]]
    assert secret not in str(listing)
    assert all("key" not in k for k in listing["data"])


def test_a_key_cannot_grant_scopes_it_lacks_nor_make_keys_for_another_tenant(stack: Stack) -> None:
    manager = create_key(frozenset({Scope.KEYS_MANAGE, Scope.MESSAGES_SEND}))
    status, body = stack.request("POST", "/v1/keys", {"name": "x", "scopes": ["webhooks:manage"]}, key=manager)
    assert status == 403, body
    assert body["error"]["field"] == "scopes", body
    status, body = stack.request(
        "POST", "/v1/keys", {"name": "x", "scopes": ["messages:send"], "tenant": "other"}, key=manager
    )
    assert status == 403, body
    assert body["error"]["field"] == "tenant", body
    status, body = stack.request("POST", "/v1/keys", {"name": "x", "scopes": ["no:such"]}, key=manager)
    assert status == 422, body


def test_another_tenants_key_is_not_found_and_ids_are_exact(stack: Stack) -> None:
    foreign = create_key(tenant="other")
    foreign_id = services().keys.authenticate(foreign).key_id  # type: ignore[union-attr]
    assert stack.request("POST", f"/v1/keys/{foreign_id}/disable")[0] == 404
    assert services().keys.authenticate(foreign) is not None
    # A prefix is not an id here: the path refuses it before any lookup.
    assert stack.request("POST", f"/v1/keys/{foreign_id[:8]}/disable")[0] == 422


def test_a_disabled_key_stops_working(stack: Stack) -> None:
    _, created = stack.request("POST", "/v1/keys", {"name": "tmp", "scopes": ["messages:send"]})
    status, body = stack.request("POST", f"/v1/keys/{created['id']}/disable")
    assert status == 200, body
    assert body["state"] == "disabled", body
    assert stack.request("POST", "/v1/messages", MESSAGE, key=created["key"])[0] == 401


def test_rotation_both_keys_work_during_the_grace_period_and_only_the_new_one_after(stack: Stack) -> None:
    # GIVEN a key
    _, old = stack.request("POST", "/v1/keys", {"name": "app", "scopes": ["messages:send"]})
    # WHEN it is rotated with a one-hour grace period
    status, rotated = stack.request("POST", f"/v1/keys/{old['id']}/rotate", {"grace_seconds": 3600})
    assert status == 201, rotated
    new_secret = rotated["key"]
    assert rotated["previous"]["replaced_by"] == rotated["id"]
    # THEN both keys send now
    assert stack.request("POST", "/v1/messages", MESSAGE, key=old["key"])[0] == 202
    assert stack.request("POST", "/v1/messages", MESSAGE, key=new_secret)[0] == 202
    # AND a minute before the grace period ends both still authenticate; a second after it, only the new one
    before, after = _store_at(timedelta(minutes=59)), _store_at(timedelta(hours=1, seconds=1))
    assert before.authenticate(old["key"]) is not None
    assert before.authenticate(new_secret) is not None
    assert after.authenticate(old["key"]) is None
    assert after.authenticate(new_secret) is not None


def test_rotation_with_no_grace_ends_the_old_key_at_once(stack: Stack) -> None:
    _, old = stack.request("POST", "/v1/keys", {"name": "app", "scopes": ["messages:send"]})
    status, rotated = stack.request("POST", f"/v1/keys/{old['id']}/rotate", {"grace_seconds": 0})
    assert status == 201, rotated
    assert stack.request("POST", "/v1/messages", MESSAGE, key=old["key"])[0] == 401
    assert stack.request("POST", "/v1/messages", MESSAGE, key=rotated["key"])[0] == 202
    # A key that no longer works cannot be rotated again (that would resurrect it under a new secret).
    status, body = stack.request("POST", f"/v1/keys/{old['id']}/rotate", {"grace_seconds": 60})
    assert status == 422, body
    assert body["error"]["field"] == "key_id", body
