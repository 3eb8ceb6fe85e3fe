"""Durable state for the local stack: a write-ahead journal in front of the AWS emulation.

moto keeps every table, queue, bucket and sent message in the memory of the process that serves it, so a restart
(or ``kill -9``) of ``postroom local`` used to lose everything, mail already answered ``202`` included. This module
keeps the one emulation and makes it durable, without a second implementation of any store:

* :class:`Journal` is WSGI middleware in front of moto's own server application. Every request that changes state
  is applied by moto, appended to ``journal.log`` and ``fdatasync``-ed *before* its response leaves; so whatever a
  handler was told has happened (a ``PutItem``, a ``SendMessage``, the ``202`` built on them) is on disk. Reads pass
  straight through. Mutations are applied one at a time, in journal order, so a replay meets the same conditions
  (a conditional write that won, won again).
* On start, :meth:`Journal.replay` feeds the records to the same moto application in process, in order, before any
  handler runs. The handlers then talk to an emulation holding exactly the acknowledged state.
* Replay runs at moto's own speed, so the journal must not grow for ever: at quiet points (after a start's replay,
  at a clean stop) :meth:`Journal.checkpoint` pickles moto's backends to ``snapshot.pickle`` and empties the journal.
  A start loads the snapshot, releases the messages its consumers held, and replays only what came after it.

Why not moto's own recorder (``MOTO_ENABLE_RECORDING``): it writes each request *before* moto runs it, whether it
succeeds or not, without ``fsync``, in the order threads reach it rather than the order moto applied them; it
records reads and ``ReceiveMessage`` too and replays everything over HTTP. A replayed receive hands out new receipt
handles, so the replayed ``DeleteMessage`` finds nothing and deleted mail comes back; a failed conditional write can
replay first and win. Why not pickled snapshots of moto's backends: they hold locks and threads, and need a quiet
point the running stack seldom has.

SQS needs care because its identifiers are moto's own random values and its consumer side is not a pure function
of the requests:

* Ids: moto draws every id (SQS MessageId, SNS MessageId, SES message id) from one seedable generator
  (``moto.moto_api._internal.mock_random``, the one ``/moto-api/seed`` seeds). Each journaled request runs with that
  generator seeded by its sequence number, on its own thread only, so a replay recreates the very same ids while
  concurrent reads keep drawing from the shared one.
* ``DeleteMessage``/``DeleteMessageBatch`` carry receipt handles, which a replay cannot reproduce (receives are not
  replayed). Before moto runs a delete, the journal looks up which message ids those handles name and records the
  *ids* that were removed; the replay removes those ids.
* ``ReceiveMessage`` and ``ChangeMessageVisibility`` are consumer state, not journaled: every consumer died with the
  old process, so after a restart every message that was not deleted is visible at once (as after a crashed Lambda,
  minus the wait for the visibility timeout). A delivery deferred by a visibility change is retried at once.
  Receive counts start again from zero.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import logging
import os
import pickle
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("postroom.local")

JOURNAL_FILE = "journal.log"
SNAPSHOT_FILE = "snapshot.pickle"
# Operations (X-Amz-Target suffix or query-protocol Action) that only read. Anything else that is not a GET/HEAD is
# journaled: writing a read costs a little replay time, missing a write loses state.
_READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "TransactGet", "Head", "Check")
# The SQS consumer's side: receipt handles and visibility die with the consumers (see the module docstring).
_CONSUMER_STATE = frozenset({"ReceiveMessage", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"})
_SQS_DELETES = frozenset({"DeleteMessage", "DeleteMessageBatch"})
_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
# WSGI environ keys a replay needs to rebuild the request exactly as moto first saw it.
_ENVIRON_KEYS = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "SERVER_NAME", "SERVER_PORT",
                 "SCRIPT_NAME", "RAW_URI", "REQUEST_URI", "wsgi.url_scheme")  # fmt: skip

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StateLockedError(RuntimeError):
    """Another ``postroom local`` already runs on this state directory."""


# --- moto's identifiers, reproducible per journaled request --------------------------------------------------------
_seeded = threading.local()
_install_lock = threading.Lock()


def _install_per_thread_seeding() -> None:
    """Route moto's generator through a per-thread override (set only while a journaled request runs).

    ``MotoRandom`` is a ``random.Random``: its ``uuid4``, ``choice`` and ``get_random_*`` all draw through
    ``getrandbits`` (and ``random`` for floats), so overriding those two on the singleton covers every id moto makes.
    """
    from moto.moto_api._internal import mock_random

    with _install_lock:
        if getattr(mock_random, "_postroom_per_thread", False):
            return
        base = type(mock_random)

        def getrandbits(k: int) -> int:
            rng: random.Random | None = getattr(_seeded, "rng", None)
            return rng.getrandbits(k) if rng is not None else base.getrandbits(mock_random, k)

        def uniform_random() -> float:
            rng: random.Random | None = getattr(_seeded, "rng", None)
            return rng.random() if rng is not None else base.random(mock_random)

        mock_random.getrandbits = getrandbits  # type: ignore[method-assign]
        mock_random.random = uniform_random  # type: ignore[method-assign]
        mock_random._postroom_per_thread = True  # type: ignore[attr-defined]


@contextmanager
def _seeded_ids(seq: int) -> Iterator[None]:
    _seeded.rng = random.Random(seq)  # noqa: S311 - identifiers of an emulator, not secrets
    try:
        yield
    finally:
        _seeded.rng = None


# --- request classification ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Request:
    environ: dict[str, Any]
    body: bytes
    operation: str | None  # X-Amz-Target suffix or query Action; None for REST APIs (S3, SES v2, Scheduler)

    @property
    def mutates(self) -> bool:
        if self.environ.get("PATH_INFO", "").startswith("/moto-api"):
            return False  # moto's own control plane (reset, seed, data.json) is not AWS state
        if self.operation is None:
            return self.environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD", "OPTIONS")
        if self.operation in _CONSUMER_STATE:
            return False
        return not self.operation.startswith(_READ_PREFIXES)

    def params(self) -> dict[str, Any]:
        """The request's parameters: the JSON body (JSON protocols) or the form/query fields (query protocol)."""
        if self.body[:1] == b"{":
            try:
                loaded = json.loads(self.body)
            except ValueError:
                return {}
            return loaded if isinstance(loaded, dict) else {}
        fields = parse_qs(self.environ.get("QUERY_STRING", ""))
        if "x-www-form-urlencoded" in self.environ.get("CONTENT_TYPE", ""):
            fields |= parse_qs(self.body.decode("latin-1"))
        return {name: values[-1] for name, values in fields.items()}


def _operation(environ: dict[str, Any], body: bytes) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return str(action[-1])
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        action = parse_qs(body.decode("latin-1")).get("Action")
        if action:
            return action[-1]
    return None


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    if length > 0:
        return bytes(stream.read(length))
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


# --- SQS deletes by message id ---------------------------------------------------------------------------------
def _sqs_queue(account: str, region: str, name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region].queues.get(name)


def _queue_coordinates(request: _Request, params: dict[str, Any]) -> tuple[str, str, str] | None:
    url = params.get("QueueUrl") or request.environ.get("PATH_INFO", "")
    parts = [part for part in urlsplit(str(url)).path.split("/") if part]
    if len(parts) < 2:
        return None
    match = _CREDENTIAL_REGION.search(request.environ.get("HTTP_AUTHORIZATION", ""))
    region = match.group(1) if match else os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return parts[-2], region, parts[-1]


def _receipt_handles(params: dict[str, Any]) -> set[str]:
    handles = {str(value) for name, value in params.items() if name.endswith("ReceiptHandle")}
    for entry in params.get("Entries") or []:
        if isinstance(entry, dict) and entry.get("ReceiptHandle"):
            handles.add(str(entry["ReceiptHandle"]))
    return handles


def _message_ids(queue: Any, handles: set[str]) -> list[str]:
    return [m.id for m in list(queue._messages) if any(m.had_receipt_handle(h) for h in handles)]


def _delete_by_id(account: str, region: str, name: str, ids: Iterable[str]) -> int:
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[account][region]
    queue = backend.queues.get(name)
    if queue is None:
        return 0
    wanted = set(ids)
    removed = 0
    for message in list(queue._messages):
        if message.id in wanted:
            # moto deletes by receipt handle only: receive the message (in this replay, nobody else can) and
            # delete it through moto's own path, which keeps its FIFO and pending bookkeeping right.
            message.mark_received()
            assert message.receipt_handle is not None  # mark_received just set it
            backend.delete_message(name, message.receipt_handle)
            removed += 1
    return removed


# --- snapshots of moto's backends ------------------------------------------------------------------------------
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _SnapshotPickler(pickle.Pickler):
    """Pickles moto's backends; their locks (SQS queues hold one for long polls) are saved as fresh, unlocked ones."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if isinstance(obj, _LOCK_TYPES[1]) else threading.Lock), ()
        return NotImplemented


def _backend_dicts() -> dict[str, Any]:
    """Every moto service backend in use, by ``module:attribute`` of its ``BackendDict``."""
    from moto.core.base_backend import BackendDict

    found: dict[str, Any] = {}
    instances: list[Any] = BackendDict._instances  # type: ignore[misc]  # moto's registry of live BackendDicts
    for backends in list(instances):
        module = sys.modules.get(backends.backend.__module__)
        for name, value in vars(module or object()).items():
            if value is backends:
                found[f"{module.__name__}:{name}"] = backends  # type: ignore[union-attr]
                break
    return found


def _restore_backends(saved: dict[str, dict[str, Any]]) -> None:
    import importlib

    from moto.core.base_backend import BackendDict

    for where, accounts in saved.items():
        module_name, _, attribute = where.partition(":")
        live = getattr(importlib.import_module(module_name), attribute)
        live.clear()
        live.update(accounts)
        instances: list[Any] = BackendDict._instances  # type: ignore[misc]  # moto's registry of live BackendDicts
        if live not in instances:
            instances.append(live)  # so that /moto-api/reset still clears it
    _release_in_flight()


def _release_in_flight() -> None:
    """Make every SQS message visible that a consumer of the old process held (a clean stop may come in the middle
    of a batch): as after a replay, no consumer outlives its process, so none may hide a message for its visibility
    timeout (12 minutes for the delivery queue)."""
    from moto.sqs.models import sqs_backends

    for accounts in sqs_backends.values():
        for backend in accounts.values():
            for queue in backend.queues.values():
                for message in queue.pending_messages:
                    message.change_visibility(0)
                queue.pending_messages.clear()


# --- the journal -----------------------------------------------------------------------------------------------
@dataclass
class ReplayReport:
    records: int
    seconds: float
    torn_tail_bytes: int  # a record cut by a kill mid-write: never acknowledged, so dropped


class Journal:
    """Append-only log of the emulation's state changes in ``directory``; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / JOURNAL_FILE
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # One writer per journal: a second stack on the same directory would interleave two histories.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise StateLockedError(f"another `postroom local` is using {directory}") from None
        self._lock = threading.Lock()
        self._next_seq = 1
        self.appended = 0
        _install_per_thread_seeding()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # closing the descriptor also releases the flock
                self._fd = -1

    # --- snapshots -------------------------------------------------------------------------------------------
    @property
    def snapshot_path(self) -> Path:
        return self.directory / SNAPSHOT_FILE

    def checkpoint(self) -> None:
        """Save moto's whole state and empty the journal. Call at a quiet point: mutations wait on the journal's lock,
        but SQS receives do not, so no poller may be running."""
        with self._lock:
            partial = self.snapshot_path.with_suffix(".partial")
            with partial.open("wb") as out:
                _SnapshotPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(
                    {"seq": self._next_seq - 1, "backends": {k: dict(v) for k, v in _backend_dicts().items()}}
                )
                out.flush()
                os.fsync(out.fileno())
            partial.replace(self.snapshot_path)
            _fsync_directory(self.directory)
            # A crash before this truncation leaves records the snapshot already holds: replay skips them by seq.
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)

    def _load_snapshot(self) -> int:
        if not self.snapshot_path.is_file():
            return 0
        with self.snapshot_path.open("rb") as snapshot:
            saved = pickle.load(snapshot)  # noqa: S301 - written by this stack into its own state directory
        _restore_backends(saved["backends"])
        return int(saved["seq"])

    # --- replay ----------------------------------------------------------------------------------------------
    def replay(self, app: WsgiApp) -> ReplayReport:
        """Load the snapshot, then apply every later complete record to ``app`` in order (call before anything else
        talks to the emulation)."""
        started = time.monotonic()
        self._next_seq = self._load_snapshot() + 1
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        torn = len(data) - complete
        if torn:
            # The tail of a write cut short by a kill: its request never got a response. Cut it off, so the next
            # record starts on a line of its own.
            os.ftruncate(self._fd, complete)
        count = 0
        for line in data[:complete].splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if record["seq"] < self._next_seq:
                continue  # already in the snapshot (a crash came between writing it and emptying the journal)
            with _seeded_ids(record["seq"]):
                if "sqs_delete" in record:
                    spec = record["sqs_delete"]
                    _delete_by_id(spec["account"], spec["region"], spec["queue"], spec["ids"])
                else:
                    environ = self._environ(record)
                    status, _, _ = _call(app, environ)
                    if status >= 400:
                        log.warning("journal record %s replayed with HTTP %s", record["seq"], status)
            self._next_seq = record["seq"] + 1
            count += 1
        return ReplayReport(records=count, seconds=time.monotonic() - started, torn_tail_bytes=torn)

    @staticmethod
    def _environ(record: dict[str, Any]) -> dict[str, Any]:
        body = base64.b64decode(record["body"])
        environ: dict[str, Any] = dict(record["environ"])
        environ.update(
            {
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.version": (1, 0),
                "wsgi.multithread": False,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
                "REMOTE_ADDR": "127.0.0.1",
            }
        )
        return environ

    # --- recording -------------------------------------------------------------------------------------------
    def middleware(self, app: WsgiApp) -> WsgiApp:
        def journaled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            request = _Request(environ, body, _operation(environ, body))
            if not request.mutates:
                return app(environ, start_response)
            with self._lock:
                status, headers, content = self._apply(app, request)
            start_response(f"{status} {_reason(status)}", headers)
            return [content]

        return journaled

    def _apply(self, app: WsgiApp, request: _Request) -> tuple[int, list[tuple[str, str]], bytes]:
        seq = self._next_seq
        delete: tuple[str, str, str] | None = None
        candidates: list[str] = []
        if request.operation in _SQS_DELETES:
            params = request.params()
            delete = _queue_coordinates(request, params)
            queue = _sqs_queue(*delete) if delete else None
            candidates = _message_ids(queue, _receipt_handles(params)) if queue is not None else []
        with _seeded_ids(seq):
            status, headers, content = _call(app, request.environ)
        if status >= 400:
            return status, headers, content  # refused: nothing changed, nothing to replay
        record: dict[str, Any]
        if delete is not None:
            queue = _sqs_queue(*delete)
            remaining = {m.id for m in list(queue._messages)} if queue is not None else set()
            removed = [message_id for message_id in candidates if message_id not in remaining]
            if not removed:
                return status, headers, content
            account, region, name = delete
            record = {"seq": seq, "sqs_delete": {"account": account, "region": region, "queue": name, "ids": removed}}
        else:
            environ = {key: request.environ[key] for key in _ENVIRON_KEYS if key in request.environ}
            environ |= {key: value for key, value in request.environ.items() if key.startswith("HTTP_")}
            record = {"seq": seq, "environ": environ, "body": base64.b64encode(request.body).decode()}
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        os.write(self._fd, line)
        # Durable before the response: what a caller was told happened survives a kill -9 and a power cut.
        os.fdatasync(self._fd)
        self._next_seq = seq + 1
        self.appended += 1
        return status, headers, content


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _call(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"], captured["headers"] = status, headers
        return lambda _data: None

    result = app(environ, start_response)
    try:
        content = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(str(captured["status"]).split(" ", 1)[0]), list(captured["headers"]), content


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class MotoServer:
    """moto's server application on loopback in a thread (as ``ThreadedMotoServer``), behind the journal when the
    state is durable."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, journal: Journal | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.app: WsgiApp = DomainDispatcherApplication(create_backend_app)
        self.journal = journal
        self._host, self._port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def replay(self) -> ReplayReport | None:
        if self.journal is None:
            return None
        report = self.journal.replay(self.app)
        self.journal.checkpoint()  # the next start replays only what this run adds
        return report

    def checkpoint(self) -> None:
        if self.journal is not None:
            self.journal.checkpoint()

    def start(self) -> None:
        from werkzeug.serving import make_server

        app = self.journal.middleware(self.app) if self.journal is not None else self.app
        self._server = make_server(self._host, self._port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.journal is not None:
            self.journal.close()
