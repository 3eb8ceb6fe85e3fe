"""The bridge's kept-alive connections (``bridge/connections.py``) and its on-disk message cache (``bridge/cache.py``),
without a stack: a small HTTP/1.1 server on loopback and a temporary directory."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postroom.protocols.bridge import connections as pool_module
from postroom.protocols.bridge.cache import RawCache
from postroom.protocols.bridge.connections import Connections
from postroom.protocols.bridge.mailbox_client import Listing, Listings


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.opened += 1

    def log_message(self, *_: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        body = f"{self.command} {self.path} {len(received)}".encode()
        self.send_response(302 if self.path.startswith("/redirect") else 200)
        if self.path.startswith("/redirect"):
            self.send_header("Location", "http://elsewhere.invalid/object")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.drop_after_answer:
            # Gone without a word, as a server does with a connection it found idle too long.
            self.close_connection = True

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815 - http.server's names


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.opened = 0
        self.drop_after_answer = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def test_one_connection_serves_a_run_of_requests(server: _Server) -> None:
    # GIVEN a pool
    pool = Connections(timeout=5)
    # WHEN twenty requests are made one after another, a redirect among them
    answers = [pool.request("GET", f"{server.url}/v1/mail/{n}/raw") for n in range(19)]
    redirect = pool.request("GET", f"{server.url}/redirect")
    pool.close()
    # THEN each got its own answer, the redirect was answered rather than followed, and one connection carried them
    assert [a.body for a in answers] == [f"GET /v1/mail/{n}/raw 0".encode() for n in range(19)]
    assert redirect.status == 302
    assert redirect.headers["location"] == "http://elsewhere.invalid/object"
    assert server.opened == 1


def test_concurrent_downloads_open_no_more_connections_than_there_are_downloaders(server: _Server) -> None:
    # GIVEN a pool shared by eight threads, as the bridge's downloaders share it
    pool = Connections(timeout=5)
    # WHEN they make 200 requests between them
    with ThreadPoolExecutor(max_workers=8) as threads:
        bodies = list(threads.map(lambda n: pool.request("GET", f"{server.url}/m/{n}").body, range(200)))
    pool.close()
    # THEN every answer is the right one, over at most eight connections
    assert bodies == [f"GET /m/{n} 0".encode() for n in range(200)]
    assert server.opened <= 8


def test_a_post_is_never_sent_on_a_connection_that_may_have_been_dropped(server: _Server) -> None:
    # GIVEN a pool holding a kept-alive connection
    pool = Connections(timeout=5)
    pool.request("GET", f"{server.url}/first")
    # WHEN a POST follows, then a GET
    posted = pool.request("POST", f"{server.url}/v1/mailboxes/x/expunge", body=b'{"ids": []}')
    pool.request("GET", f"{server.url}/after")
    pool.close()
    # THEN the POST went out on a connection of its own (a dropped one could leave it unknown whether it arrived),
    # which is kept for the requests after it
    assert posted.body == b"POST /v1/mailboxes/x/expunge 11"
    assert server.opened == 2


def test_a_get_on_a_connection_the_server_dropped_is_sent_again_on_a_new_one(server: _Server) -> None:
    # GIVEN a server that drops each connection after answering, without saying so
    server.drop_after_answer = True
    pool = Connections(timeout=5)
    pool.request("GET", f"{server.url}/first")
    # WHEN the pool reuses the dropped connection
    answer = pool.request("GET", f"{server.url}/second")
    pool.close()
    # THEN the request is answered all the same, on a new connection
    assert answer.body == b"GET /second 0"
    assert server.opened == 2


def test_idle_connections_past_their_time_are_not_reused(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN connections that count as idle too long at once
    monkeypatch.setattr(pool_module, "IDLE_SECONDS", 0.0)
    pool = Connections(timeout=5)
    # WHEN two requests are made
    pool.request("GET", f"{server.url}/one")
    pool.request("GET", f"{server.url}/two")
    pool.close()
    # THEN each had a fresh connection
    assert server.opened == 2


def test_an_unreachable_server_raises_os_error() -> None:
    pool = Connections(timeout=2)
    with pytest.raises(OSError, match="refused"):  # what MailApi reports as the API being unreachable
        pool.request("GET", "http://127.0.0.1:9/nothing")


# -- the cache -------------------------------------------------------------------------------------------------------


def test_cached_messages_come_back_byte_for_byte_and_stay_private(tmp_path: Path) -> None:
    # GIVEN a cache
    cache = RawCache(tmp_path / "mail")
    raw = b"From: a@example.org\r\nSubject: Hi\r\n\r\nBody\r\n"
    # WHEN a message is kept
    cache.put("eml_01ABC", raw)
    # THEN it comes back exactly, an unknown id does not, and only the user can read the files
    assert cache.get("eml_01ABC") == raw
    assert cache.get("eml_01XYZ") is None
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "mail").iterdir())
    # and a new process finds it
    assert RawCache(tmp_path / "mail").get("eml_01ABC") == raw


def test_past_its_bound_the_least_recently_used_messages_go(tmp_path: Path) -> None:
    # GIVEN a cache that holds about three 1 000-byte messages
    cache = RawCache(tmp_path, max_bytes=3 * 1032 + 10)
    for n in range(3):
        cache.put(f"eml_{n}", bytes([n]) * 1000)
    # WHEN the oldest is read again and a fourth arrives
    assert cache.get("eml_0") is not None
    cache.put("eml_3", b"3" * 1000)
    # THEN the least recently used one went, the rest stay, and the bound holds
    assert cache.get("eml_1") is None
    assert [cache.get(f"eml_{n}") is not None for n in (0, 2, 3)] == [True, True, True]
    assert cache.size <= cache.max_bytes
    assert len(list(tmp_path.glob("*.eml"))) == 3
    # and a message larger than the whole bound is not kept at all
    cache.put("eml_huge", b"x" * 5000)
    assert cache.get("eml_huge") is None


def test_eviction_order_survives_a_restart(tmp_path: Path) -> None:
    # GIVEN two messages, the first one used last (file times are what a new process goes by)
    first = RawCache(tmp_path, max_bytes=2 * 1032 + 10)
    first.put("eml_a", b"a" * 1000)
    first.put("eml_b", b"b" * 1000)
    os.utime(tmp_path / next(p.name for p in tmp_path.glob("*.eml") if p.read_bytes().endswith(b"b")), (1, 1))
    # WHEN a new process adds a third
    second = RawCache(tmp_path, max_bytes=2 * 1032 + 10)
    second.put("eml_c", b"c" * 1000)
    # THEN the one used longest ago went
    assert second.get("eml_b") is None
    assert second.get("eml_a") == b"a" * 1000


def test_a_damaged_file_is_dropped_and_not_served(tmp_path: Path) -> None:
    # GIVEN a kept message whose file was cut short (a crash, a full disk)
    cache = RawCache(tmp_path)
    cache.put("eml_cut", b"From: a@example.org\r\n\r\n" + b"x" * 500)
    (path,) = tmp_path.glob("*.eml")
    path.write_bytes(path.read_bytes()[:100])
    # WHEN it is read
    found = cache.get("eml_cut")
    # THEN the cache answers that it has nothing (so the message is downloaded again) and the file is gone
    assert found is None
    assert not path.exists()


def test_discarded_messages_leave_the_disk(tmp_path: Path) -> None:
    cache = RawCache(tmp_path)
    cache.put("eml_gone", b"bytes")
    cache.put("eml_kept", b"bytes")
    cache.discard(["eml_gone", "eml_never_there"])
    assert cache.get("eml_gone") is None
    assert cache.get("eml_kept") == b"bytes"
    assert len(list(tmp_path.glob("*.eml"))) == 1


# -- the listings ----------------------------------------------------------------------------------------------------


def test_a_listing_is_reused_only_at_the_same_state_for_the_same_key() -> None:
    # GIVEN a listing kept for one key at state 7
    listings = Listings(max_entries=2)
    listings.put("key-a", "x@shop.example:inbox", 7, [Listing("eml_1", 1, [], 10, "2026-01-01T00:00:00Z")])
    # WHEN a session changes the keywords of what it was handed
    handed = listings.get("key-a", "x@shop.example:inbox", 7)
    assert handed is not None
    handed[0].keywords.append("$seen")
    # THEN the kept listing is unchanged, and it is not handed out at another state or to another key
    again = listings.get("key-a", "x@shop.example:inbox", 7)
    assert again is not None
    assert again[0].keywords == []
    assert listings.get("key-a", "x@shop.example:inbox", 8) is None
    assert listings.get("key-b", "x@shop.example:inbox", 7) is None
    # and past its bound the least recently used goes
    listings.put("key-a", "x@shop.example:archive", 1, [])
    listings.put("key-a", "x@shop.example:trash", 1, [])
    assert listings.get("key-a", "x@shop.example:inbox", 7) is None


def test_concurrent_first_writes_all_land(tmp_path: Path) -> None:
    # The first write of a fresh cache scans the directory; the bridge's 8 downloaders write at the same moment, and
    # a scan once took another thread's file in progress for a crash's leftover and deleted it.
    cache = RawCache(tmp_path / "mail")
    messages = {f"eml_{n}": os.urandom(64 * 1024) for n in range(160)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: cache.put(*item), messages.items()))
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 160
    assert all(RawCache(tmp_path / "mail").get(mail_id) == raw for mail_id, raw in messages.items())


def test_only_old_partial_files_are_taken_for_crash_leftovers(tmp_path: Path) -> None:
    directory = tmp_path / "mail"
    directory.mkdir()
    old, fresh = directory / ".part-old", directory / ".part-fresh"
    old.write_bytes(b"cut short")
    fresh.write_bytes(b"being written")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    RawCache(directory).put("eml_1", b"x")
    assert not old.exists()
    assert fresh.exists()
