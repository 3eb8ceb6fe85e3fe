"""The worker's suppression check: a RecipientFilter that answers ``suppressed`` for listed recipients, so they are
never sent to while the message's other recipients still are.

The worker's batch is looked up at once (:meth:`SuppressionFilter.prepare`: one BatchGetItem for the recipients of
all its messages, issue 21); a record the batch lookup did not cover is looked up on its own. The batch lookup is
used for that batch only, so an address suppressed meanwhile counts from the next batch on."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.suppression.suppression_store import ALL_DOMAINS

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.suppression.suppression_store import Suppression, SuppressionStore


_Scope = tuple[str, str, str | None]  # tenant, sending domain, topic: what a lookup's answer depends on


def _scope(record: MessageRecord) -> _Scope:
    return record.tenant, record.from_address.rpartition("@")[2].lower(), record.topic


class SuppressionFilter:
    def __init__(self, store: SuppressionStore) -> None:
        self._store = store
        self._batch: dict[_Scope, tuple[set[str], dict[str, Suppression]]] = {}

    def prepare(self, records: list[MessageRecord]) -> None:
        """Look up the pending recipients of a batch's records together (replacing the previous batch's answers)."""
        wanted: dict[_Scope, list[str]] = defaultdict(list)
        for record in records:
            wanted[_scope(record)].extend(r.address for r in record.pending())
        batch: dict[_Scope, tuple[set[str], dict[str, Suppression]]] = {}
        for (tenant, domain, topic), addresses in wanted.items():
            if addresses:
                listed = self._store.check(tenant, addresses, domain=domain, topic=topic)
                batch[(tenant, domain, topic)] = ({a.lower() for a in addresses}, listed)
        self._batch = batch

    def _listed(self, record: MessageRecord, recipients: list[str]) -> dict[str, Suppression]:
        scope = _scope(record)
        known = self._batch.get(scope)
        if known is not None and all(r.lower() in known[0] for r in recipients):
            return known[1]
        tenant, domain, topic = scope
        return self._store.check(tenant, recipients, domain=domain, topic=topic)

    def screen(self, record: MessageRecord, recipients: list[str]) -> list[RecipientResult]:
        if not recipients:
            return []
        listed = self._listed(record, recipients)
        results = []
        for recipient in recipients:
            entry = listed.get(recipient.lower())
            if entry is None:
                continue
            scope = "all sending domains" if entry.scope == ALL_DOMAINS else entry.scope
            results.append(
                RecipientResult(
                    recipient,
                    Outcome.SUPPRESSED,
                    reply=f"not sent: on the suppression list for {scope} ({entry.reason.value} since "
                    f"{entry.created_at})",
                    extra={"suppression_reason": entry.reason.value, "suppression_scope": entry.scope},
                )
            )
        return results
