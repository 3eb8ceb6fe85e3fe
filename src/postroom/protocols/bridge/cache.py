"""Received messages kept on disk by the bridge, by mail id, so a mail client's next session does not download them
again.

Safe to keep: the MIME of a mail id never changes (the store never rewrites a received message; a copy gets a new id,
a move keeps the id and the bytes), so an entry never goes stale; only flags and mailboxes change, and those always
come from the API. Entries are read only for ids the API has just listed for the logged-in key, so the cache lets no
one read mail their key could not.

Bounded: past ``max_bytes`` the least recently used entries go (use is remembered across restarts through each file's
modification time). Each file starts with the SHA-256 of the message, checked on every read, so a file cut short by a
crash is dropped and downloaded again rather than served. Files are private to the user (0600 in a 0700 directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
STALE_PART_SECONDS = 600.0  # a partial file this old is no download in progress
_DIGEST = hashlib.sha256().digest_size
_SUFFIX = ".eml"


class RawCache:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: OrderedDict[str, int] | None = None  # file name -> bytes on disk, least recently used first
        self._total = 0

    def get(self, mail_id: str) -> bytes | None:
        name = _name(mail_id)
        path = self.directory / name
        try:
            data = path.read_bytes()
        except OSError:
            return None
        digest, raw = data[:_DIGEST], data[_DIGEST:]
        if len(data) < _DIGEST or hashlib.sha256(raw).digest() != digest:
            self._remove([name])
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used, also for the next process's eviction order
        with self._lock:
            sizes = self._load()
            if name in sizes:
                sizes.move_to_end(name)
        return raw

    def put(self, mail_id: str, raw: bytes) -> None:
        """Keep a message (best effort: a full or read-only disk only means it is downloaded again next time)."""
        size = _DIGEST + len(raw)
        if size > self.max_bytes:
            return
        name = _name(mail_id)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".part-")  # 0600
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(hashlib.sha256(raw).digest())
                    out.write(raw)
                os.replace(temporary, self.directory / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError:
            return
        with self._lock:
            sizes = self._load()
            self._total += size - sizes.pop(name, 0)
            sizes[name] = size
            doomed = []
            while self._total > self.max_bytes and sizes:
                oldest, freed = sizes.popitem(last=False)
                self._total -= freed
                doomed.append(oldest)
        for oldest in doomed:
            with contextlib.suppress(OSError):
                (self.directory / oldest).unlink()

    def discard(self, mail_ids: Iterable[str]) -> None:
        """Forget messages that are gone for good (expunged): no copy of them stays on this machine."""
        self._remove([_name(mail_id) for mail_id in mail_ids])

    @property
    def size(self) -> int:
        with self._lock:
            self._load()
            return self._total

    def _remove(self, names: list[str]) -> None:
        with self._lock:
            sizes = self._load()
            for name in names:
                self._total -= sizes.pop(name, 0)
        for name in names:
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()

    def _load(self) -> OrderedDict[str, int]:
        """What an earlier run left, oldest use first (called with the lock held)."""
        if self._sizes is None:
            found = []
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.directory):
                    if entry.name.startswith(".part-"):
                        # A write a crash interrupted - or one another thread is doing right now, so only old ones.
                        with contextlib.suppress(OSError):
                            if time.time() - entry.stat().st_mtime > STALE_PART_SECONDS:
                                os.unlink(entry.path)
                    elif entry.name.endswith(_SUFFIX) and entry.is_file():
                        stat = entry.stat()
                        found.append((stat.st_mtime, entry.name, stat.st_size))
            found.sort()
            self._sizes = OrderedDict((name, size) for _, name, size in found)
            self._total = sum(self._sizes.values())
        return self._sizes


def _name(mail_id: str) -> str:
    # Hashed: a file name safe on every file system whatever the id holds, and of one length.
    return hashlib.sha256(mail_id.encode()).hexdigest() + _SUFFIX
