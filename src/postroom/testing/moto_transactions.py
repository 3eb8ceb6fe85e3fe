"""Keep moto's DynamoDB ``TransactWriteItems`` O(touched items) instead of O(table).

moto 5 backs each transaction up with ``copy.deepcopy`` of every table it names, so its cost grows with the table:
the mailbox store writes every filed message in a transaction, and one SMTP session of 1 000 inbound messages took
minutes of CPU in ``DynamoType.__deepcopy__`` (quadratic). Its rollback only ever swaps a backup back in, so the backup
may share every item the transaction does not name; the items it names (an Update changes its item in place) are
deep-copied as before. Installed by the local stack (its moto server runs in the same process) and by the test
suite (tests/conftest.py). It replaced a patch that copied each table once per transaction: still O(table) each.
"""

from __future__ import annotations

import copy
import threading
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

_touched = threading.local()  # item keys per table name, for the transaction running on this thread
_applied = False


def _touched_keys(backend: Any, transact_items: list[dict[str, Any]]) -> dict[str, set[tuple[Any, Any]]]:
    """(hash key, range key or None) as DynamoType, per table name, of every item the transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched: dict[str, set[tuple[Any, Any]]] = defaultdict(set)
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName"))
            source = (op.get("Item") if op_type == "Put" else op.get("Key")) or {}
            if table is None or table.hash_key_attr not in source:
                continue
            ranged = source.get(table.range_key_attr) if table.range_key_attr else None
            key = (DynamoType(source[table.hash_key_attr]), DynamoType(ranged) if ranged is not None else None)
            touched[op["TableName"]].add(key)
    return touched


def _backup(table: Any) -> Any:
    """A table object to swap back in on rollback: the items a transaction names are copies, the rest shared."""
    names = getattr(_touched, "keys", {}).get(table.name)
    if names is None:
        return copy.deepcopy(table)
    clone = copy.copy(table)
    # Partitions the transaction does not name are shared as they are (a C-level dict copy, no per-item work).
    clone.items = defaultdict(dict, table.items)
    for hash_key, range_key in names:
        value = table.items.get(hash_key)
        if value is None:
            continue
        if isinstance(value, dict):  # a table with a range key: {range key: item}
            if clone.items[hash_key] is value:
                clone.items[hash_key] = dict(value)
            if range_key in value:
                clone.items[hash_key][range_key] = copy.deepcopy(value[range_key])
        else:
            clone.items[hash_key] = copy.deepcopy(value)
    return clone


def install() -> None:
    """Patch moto's DynamoDB backend in this process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _touched.keys = _touched_keys(self, transact_items)
        try:
            original(self, transact_items)
        finally:
            _touched.keys = {}

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return _backup(value) if isinstance(value, Table) else copy.deepcopy(value, memo)

    # The backend calls ``copy.deepcopy`` through its module's ``copy`` name: give that module a ``copy`` whose
    # deepcopy makes the light backup above, and leave the real module alone for everyone else.
    setattr(models, "copy", SimpleNamespace(**{**vars(copy), "deepcopy": deepcopy}))  # noqa: B010
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _applied = True
