"""moto's DynamoDB ``TransactWriteItems``, without its quadratic cost: the emulator backs up a table before a
transaction by deep-copying it once *per item* of the transaction (moto 5.2.5,
``moto/dynamodb/models/__init__.py``, ``transact_write_items``), so a 10-item transaction over a 1 000-item table
copies 10 000 items. The worker writes a batch's records in one transaction (issue 21), which made the fault suite
and the local stack crawl. The copies are all taken before the first write and are identical, so taking one per
table and handing it out again is the same backup. Only the emulator changes: AWS itself is not involved.

:func:`install` is idempotent; the local stack and the test suite call it before moto serves a request.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_lock = threading.Lock()
_installed = False


class _CopyOncePerTable:
    """Stands in for the ``copy`` module inside moto's DynamoDB models during one transaction: a table is copied
    once (the tables outlive the call, so their ids cannot be reused meanwhile); anything else as ``copy`` would."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type
        self._copies: dict[int, Any] = {}

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if not isinstance(value, self._table_type):
            return copy.deepcopy(value, memo)
        key = id(value)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(value, memo)
        return self._copies[key]


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        from moto.dynamodb import models
        from moto.dynamodb.models.table import Table

        namespace = vars(models)  # the module's globals, where its functions look ``copy`` up

        original = models.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            # One transaction at a time holds the stand-in (moto's backend is not safe for concurrent writes anyway).
            with _lock:
                namespace["copy"] = _CopyOncePerTable(Table)
                try:
                    original(self, transact_items)
                finally:
                    namespace["copy"] = copy

        models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
        _installed = True
