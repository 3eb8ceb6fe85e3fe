"""A mail client's second session through ``postroom bridge``: messages downloaded once are read from the bridge's
disk cache, not the API, an unchanged mailbox is not listed again, and an expunged message leaves the disk. Real
imaplib against the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from postroom.local.stack import LocalStack
from postroom.protocols.bridge.connections import Connections
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import fresh_address
from tests.bridge.test_imap_pop3 import fetch_map, imap, receive
from tests.e2e.test_local_stack import call

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _clean_aws_env(shared_local: LocalStack) -> None:
    """Replaces the per-test cleaning: ``shared_local`` cleaned the environment once for this module and then set
    the stack's settings there, which its pollers and handlers read between and during tests."""


@pytest.fixture
def local(shared_local: LocalStack) -> LocalStack:
    """The module's one stack: the tests share it, each with its own address, so none sees another's mail."""
    return shared_local


@pytest.fixture
def address(local: LocalStack) -> str:
    return fresh_address(local)


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the bridge asks for."""
    seen: list[str] = []
    send = Connections.request

    def recorded(self: Connections, method: str, url: str, **kwargs: Any) -> Any:
        seen.append(url)
        return send(self, method, url, **kwargs)

    monkeypatch.setattr(Connections, "request", recorded)
    return seen


def test_a_second_session_reads_downloaded_messages_from_disk(
    address: str, local: LocalStack, tmp_path: Path, requests: list[str]
) -> None:
    # GIVEN two received messages and a bridge
    kept = receive(local, "Order 1", address=address)
    gone = receive(local, "Order 2", address=address)
    config = BridgeConfig(
        api_url=local.api_url, smtp_port=None, smtps_port=None, imap_port=0, pop3_port=None, state_dir=tmp_path
    )
    with Bridge(config) as bridge:
        # WHEN a client lists them (the header fields a message list shows)
        client = imap(bridge, local, address)
        client.select("INBOX")
        typ, data = client.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
        assert typ == "OK"
        first = fetch_map(data)
        # THEN the listing answered it: its pages carry each message's header block, and nothing was downloaded
        assert any("headers=true" in url for url in requests)
        assert not [url for url in requests if "/v1/" not in url or url.endswith("/raw")]
        assert b"Order 1" in b"".join(first.values())
        # WHEN it reads the messages themselves
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        bodies = fetch_map(data)
        client.logout()
        downloads = [url for url in requests if "/v1/" not in url]
        # THEN both were downloaded once, straight from the presigned URLs the listing carried (no API call per
        # message), and both are kept under the state directory
        assert len(downloads) == 2
        assert not [url for url in requests if url.endswith("/raw")]
        assert any("raw_urls=true" in url for url in requests)
        assert len(list((tmp_path / "mail").glob("*.eml"))) == 2
        # WHEN a new session lists and reads them again
        requests.clear()
        client = imap(bridge, local, address)
        client.select("INBOX")
        typ, data = client.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
        assert typ == "OK"
        again = fetch_map(data)
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        # THEN it gets the same answers without a single download, and without listing the unchanged mailbox again
        assert typ == "OK"
        assert again == first
        assert fetch_map(data) == bodies
        assert not [url for url in requests if "/raw" in url or "/v1/" not in url]
        assert not [url for url in requests if "/messages" in url]
        client.logout()
        # WHEN a flag changes elsewhere (here through the API) and a new session lists the mailbox
        status, _ = call(local, "PATCH", f"/v1/mail/{kept}", {"keywords": {"$flagged": True}})
        assert status == 200
        requests.clear()
        client = imap(bridge, local, address)
        client.select("INBOX")
        typ, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
        # THEN the mailbox is listed afresh (its state moved) and shows the change
        assert [url for url in requests if "/messages" in url]
        assert b"\\Flagged" in fetch_map(data)[min(first)]
        # WHEN the client deletes one and expunges
        uid = max(first)
        client.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        typ, _ = client.expunge()
        assert typ == "OK"
        client.logout()
    # THEN it is gone from the API and from the bridge's disk
    status, _ = call(local, "GET", f"/v1/mail/{gone}")
    assert status == 404
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1


def test_no_cache_means_nothing_on_disk(address: str, local: LocalStack, tmp_path: Path, requests: list[str]) -> None:
    # GIVEN a bridge told to keep nothing
    receive(local, "Order 3", address=address)
    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=None,
        smtps_port=None,
        imap_port=0,
        pop3_port=None,
        state_dir=tmp_path,
        cache_bytes=0,
    )
    with Bridge(config) as bridge:
        # WHEN a client reads the message in two sessions
        for _ in range(2):
            client = imap(bridge, local, address)
            client.select("INBOX")
            typ, _ = client.fetch("1", "(BODY.PEEK[])")
            assert typ == "OK"
            client.logout()
    # THEN each session downloaded it and no message was written
    assert len([url for url in requests if "/v1/" not in url]) == 2  # the S3 downloads
    assert not (tmp_path / "mail").exists()
