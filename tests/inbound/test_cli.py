"""``postroom keys create --mailboxes`` and ``postroom addresses create`` against moto."""

from __future__ import annotations

import pytest

from postroom.cli import main
from postroom.core.auth import Scope
from postroom.wiring.services import services
from tests.inbound.conftest import Inbound


def test_keys_carry_their_mailboxes_and_addresses_can_be_registered(
    inbound: Inbound, capsys: pytest.CaptureFixture[str]
) -> None:
    table = services().settings.table
    # WHEN a key is created for one address and one domain
    assert main(["keys", "create", "--name", "desk", "--scopes", "mailbox:read,mailbox:write", "--mailboxes",
                 "Support@shop.example,*@help.example", "--table", table]) == 0  # fmt: skip
    key = capsys.readouterr().out.strip()
    principal = services().keys.authenticate(key)
    # THEN it reaches exactly those
    assert principal is not None
    assert principal.scopes == frozenset({Scope.MAILBOX_READ, Scope.MAILBOX_WRITE})
    assert principal.may_access("support@shop.example")
    assert principal.may_access("anyone@help.example")
    assert not principal.may_access("billing@shop.example")
    # WHEN an address is registered from the command line THEN it has its system mailboxes
    assert main(["addresses", "create", "billing@shop.example", "--table", table]) == 0
    assert [m.name for m in inbound.store.mailboxes("billing@shop.example")] == [
        "Inbox",
        "Drafts",
        "Sent",
        "Junk",
        "Archive",
        "Trash",
    ]
