"""Mailboxes are tenant-scoped: an address is registered under one tenant, and only that tenant's keys reach it,
whatever their ``--mailboxes`` list says (issue 15 item 5: a key of tenant t2 listing alice@ read tenant t1's mail)."""

from __future__ import annotations

import pytest

from postroom.cli import main
from postroom.core import aws
from postroom.core.auth import ALL_SCOPES
from postroom.wiring.services import services
from tests.inbound.conftest import Inbound, make_mail

ALICE = "alice@shop.example"


def tenant_key(tenant: str, *mailboxes: str) -> str:
    return services().keys.create(
        name=f"{tenant} desk", scopes=ALL_SCOPES, tenant=tenant, mailboxes=frozenset(mailboxes)
    )


def test_a_key_of_another_tenant_cannot_reach_an_address_it_lists(inbound: Inbound) -> None:
    # GIVEN alice@ registered to tenant t1, with mail in it
    inbound.store.create_address(ALICE, "t1")
    inbound.receive(make_mail("for t1 only", to=ALICE), [ALICE])
    t1 = tenant_key("t1", ALICE)
    status, page, _ = inbound.call("GET", f"/v1/mailboxes/{ALICE}:inbox/messages", key=t1)
    assert status == 200
    mail_id = page["messages"][0]["id"]
    # and keys of tenant t2 that name alice@, her domain, or every address
    for t2 in (tenant_key("t2", ALICE), tenant_key("t2", "*@shop.example"), tenant_key("t2", "*")):
        # WHEN they use alice@'s mailboxes THEN 403, as for an address the key does not list
        for method, path, body in [
            ("GET", f"/v1/mailboxes/{ALICE}:inbox", None),
            ("GET", f"/v1/mailboxes/{ALICE}:inbox/messages", None),
            ("GET", f"/v1/mailboxes/{ALICE}:inbox/changes?since=0", None),
            ("POST", f"/v1/mailboxes/{ALICE}:inbox/expunge", {}),
            ("POST", "/v1/mailboxes", {"address": ALICE, "name": "Stolen"}),
            # registering it again must not hand over t1's mailboxes ("already registered" answered 200 with them)
            ("POST", "/v1/addresses", {"address": ALICE}),
        ]:
            path, _, query = path.partition("?")
            status, answer, _ = inbound.call(method, path, body, key=t2, query=query)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), (method, path, answer)
        status, answer, _ = inbound.call("GET", "/v1/mailboxes", key=t2, query=f"address={ALICE}")
        assert status == 403, answer
        # WHEN they use alice@'s message THEN 404, as if it did not exist
        for method, path, body in [
            ("GET", f"/v1/mail/{mail_id}", None),
            ("GET", f"/v1/mail/{mail_id}/raw", None),
            ("PATCH", f"/v1/mail/{mail_id}", {"keywords": {"$seen": True}}),
            ("POST", f"/v1/mail/{mail_id}/copy", {"mailbox": f"{ALICE}:archive"}),
            ("DELETE", f"/v1/mail/{mail_id}", None),
        ]:
            status, answer, _ = inbound.call(method, path, body, key=t2)
            assert (status, answer["error"]["code"]) == (404, "not_found"), (method, path, answer)
        # WHEN they list THEN alice@ is not among the addresses or mailboxes
        _, listed, _ = inbound.call("GET", "/v1/mailboxes", key=t2)
        assert ALICE not in {m["address"] for m in listed["mailboxes"]}
        _, addresses, _ = inbound.call("GET", "/v1/addresses", key=t2)
        assert ALICE not in {a["address"] for a in addresses["addresses"]}
    # THEN t1's mail is untouched: still one unread message in the inbox, no mailbox added
    status, box, _ = inbound.call("GET", f"/v1/mailboxes/{ALICE}:inbox", key=t1)
    assert (status, box["total"], box["unread"]) == (200, 1, 1)
    assert [m.name for m in inbound.store.mailboxes(ALICE)] == ["Inbox", "Drafts", "Sent", "Junk", "Archive", "Trash"]


def test_an_address_registered_through_the_api_belongs_to_the_callers_tenant(inbound: Inbound) -> None:
    t1, t2 = tenant_key("t1", "*"), tenant_key("t2", "*")
    # WHEN a t2 key registers bob@
    status, answer, _ = inbound.call("POST", "/v1/addresses", {"address": "bob@shop.example"}, key=t2)
    assert status == 201, answer
    # THEN it is t2's: t2 lists it, t1 (with every mailbox on its key) neither lists nor reaches it
    assert inbound.store.address_tenant("bob@shop.example") == "t2"
    _, listed, _ = inbound.call("GET", "/v1/addresses", key=t2)
    assert [a["address"] for a in listed["addresses"]] == ["bob@shop.example"]
    _, listed, _ = inbound.call("GET", "/v1/addresses", key=t1)
    assert listed["addresses"] == []
    status, _, _ = inbound.call("GET", "/v1/mailboxes/bob@shop.example:inbox", key=t1)
    assert status == 403
    # and registering it again from t2 is the idempotent 200 it always was
    status, answer, _ = inbound.call("POST", "/v1/addresses", {"address": "bob@shop.example"}, key=t2)
    assert status == 200, answer


def test_an_address_without_a_recorded_tenant_is_the_default_tenants(inbound: Inbound) -> None:
    # GIVEN an address item as stores wrote it before tenants were recorded on addresses
    aws.client("dynamodb").put_item(
        TableName=services().settings.table,
        Item={
            "pk": {"S": "ADDR#old@shop.example"},
            "sk": {"S": "ADDR"},
            "address": {"S": "old@shop.example"},
            "gsi1pk": {"S": "ADDR"},
            "gsi1sk": {"S": "old@shop.example"},
        },
    )
    # THEN it belongs to the default tenant, as every key did before
    assert inbound.store.address_tenant("old@shop.example") == "default"
    _, listed, _ = inbound.call("GET", "/v1/addresses", key=tenant_key("default", "*"))
    assert "old@shop.example" in {a["address"] for a in listed["addresses"]}
    _, listed, _ = inbound.call("GET", "/v1/addresses", key=tenant_key("t2", "*"))
    assert "old@shop.example" not in {a["address"] for a in listed["addresses"]}


def test_the_cli_registers_addresses_per_tenant_and_refuses_keys_for_another_tenants_address(
    inbound: Inbound, capsys: pytest.CaptureFixture[str]
) -> None:
    table = services().settings.table
    # WHEN an address is registered for t1 from the command line THEN it is t1's
    assert main(["addresses", "create", ALICE, "--tenant", "t1", "--table", table]) == 0
    assert inbound.store.address_tenant(ALICE) == "t1"
    # and registering it for t2 does not move it (and says so, with a failing exit status)
    assert main(["addresses", "create", ALICE, "--tenant", "t2", "--table", table]) == 1
    assert "already registered to tenant t1" in capsys.readouterr().out
    assert inbound.store.address_tenant(ALICE) == "t1"
    # WHEN a t2 key is created for alice@ THEN it is refused, naming the owner
    with pytest.raises(SystemExit) as refused:
        main(["keys", "create", "--name", "x", "--scopes", "mailbox:read", "--tenant", "t2", "--mailboxes", ALICE,
              "--table", table])  # fmt: skip
    assert "registered to tenant 't1'" in str(refused.value.code)
    # and a t1 key for it is made as before
    assert main(["keys", "create", "--name", "x", "--scopes", "mailbox:read", "--tenant", "t1", "--mailboxes", ALICE,
                 "--table", table]) == 0  # fmt: skip
