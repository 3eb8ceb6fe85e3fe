"""The worker's suppression check: a RecipientFilter that answers ``suppressed`` for listed recipients, so they are
never sent to while the message's other recipients still are."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.suppression.suppression_store import ALL_DOMAINS

if TYPE_CHECKING:
    from postroom.core.message_record import MessageRecord
    from postroom.suppression.suppression_store import SuppressionStore


class SuppressionFilter:
    def __init__(self, store: SuppressionStore) -> None:
        self._store = store

    def screen(self, record: MessageRecord, recipients: list[str]) -> list[RecipientResult]:
        if not recipients:
            return []
        domain = record.from_address.rpartition("@")[2].lower()
        listed = self._store.check(record.tenant, recipients, domain=domain, topic=record.topic)
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
