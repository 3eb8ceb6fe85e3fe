"""VERP bounce addresses: what the worker writes as MAIL FROM, and what the inbound path accepts back."""

from __future__ import annotations

import pytest

from postroom.deliver.return_path import ReturnPath, VerpAddress

ID = "msg_01jabcdefghjkmnpqrstvwxyz0"
KEY = "k" * 48


def test_the_address_names_the_message_and_is_signed() -> None:
    path = ReturnPath("Bounces.Shop.Example", KEY)
    address = path.address_for(ID)
    local, _, domain = address.partition("@")
    # RFC 5321 §4.5.3.1.1: a local part is at most 64 octets; lower case so that MTAs folding case change nothing
    assert domain == "bounces.shop.example"
    assert len(local) <= 64
    assert address == address.lower()
    assert local.startswith(f"bounces+{ID}.")
    verp = path.parse(address.upper())
    assert verp == VerpAddress(address, ID, local.rpartition(".")[2])
    assert path.refusal(verp) is None


def test_a_signature_made_with_another_key_or_for_another_id_is_refused() -> None:
    path = ReturnPath("bounces.shop.example", KEY)
    other_key = ReturnPath("bounces.shop.example", "x" * 48).address_for(ID)
    other_id = path.address_for("msg_01jabcdefghjkmnpqrstvwxyz1").replace("xyz1", "xyz0")
    unsigned = ReturnPath("bounces.shop.example").address_for(ID)
    for forged in (other_key, other_id, unsigned):
        verp = path.parse(forged)
        assert verp is not None
        assert path.refusal(verp) == "its signature does not match", forged


def test_without_a_key_addresses_carry_no_tag_and_any_well_formed_one_passes() -> None:
    path = ReturnPath("bounces.shop.example")
    assert path.address_for(ID) == f"bounces+{ID}@bounces.shop.example"
    verp = path.parse(f"bounces+{ID}@bounces.shop.example")
    assert verp is not None
    assert path.refusal(verp) is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("bounces@bounces.shop.example", VerpAddress("bounces@bounces.shop.example", None)),  # the system mailbox
        ("support@bounces.shop.example", None),  # another local part: routed as usual
        (f"bounces+{ID}@shop.example", None),  # another domain
        ("bounces+hello@bounces.shop.example", VerpAddress("bounces+hello@bounces.shop.example", "")),
    ],
)
def test_what_an_address_at_the_return_path_names(address: str, expected: VerpAddress | None) -> None:
    path = ReturnPath("bounces.shop.example", KEY)
    assert path.parse(address) == expected
    if expected is not None:
        assert path.refusal(expected) == (None if expected.message_id is None else "names no Postroom message")
