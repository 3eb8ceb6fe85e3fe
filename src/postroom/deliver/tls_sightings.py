"""The TLS of the last direct-SMTP session per recipient domain, for explain's "STARTTLS seen on the last connection".

    TLS seen  pk=TLSSEEN#<recipient domain>  sk=LAST  mx_host, tls, tls_version, tls_verified, tls_policy, at,
                                                      expires_at (TTL, 30 days)

An AttemptObserver (and a BatchObserver): one PutItem per recipient domain of a batch's SMTP attempts (the recipients
of one domain share a session), and none while what this environment last wrote for the domain is unchanged and under
``REFRESH_SECONDS`` old - so a steady stream to one domain costs about one write per environment per five minutes, not
one per message (issue 21: AWS calls per delivered message). ``at`` is therefore when the facts were last written, up to
``REFRESH_SECONDS`` before the latest session that showed them. It must not raise: a failed write is logged and
delivery goes on.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from aws_lambda_powertools import Logger

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord

__all__ = ["TlsSightings"]

logger = Logger(child=True)
KEEP_SECONDS = 30 * 24 * 3600
REFRESH_SECONDS = 300
_FACTS = ("mx_host", "tls", "tls_version", "tls_verified", "tls_policy")


class TlsSightings:
    # What this execution environment last wrote, per (client, table, domain): the worker builds its observers per
    # invocation, and the point of remembering is to skip the write on the next batches too. The client is part of the
    # key because the environment keeps one per endpoint (postroom.core.aws): a new endpoint is another store.
    _written: ClassVar[weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[tuple[object, ...], float]]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None:
        self.attempted_many([(record, results)])

    def attempted_many(self, attempts: list[tuple[MessageRecord, list[tuple[RecipientResult, str]]]]) -> None:
        seen: dict[str, RecipientResult] = {}
        for _record, results in attempts:
            for result, agent in results:
                if agent == "smtp" and result.mx_host and result.tls is not None:
                    seen[result.recipient.rpartition("@")[2].lower()] = result  # the batch's latest session wins
        now = time.monotonic()
        for domain, result in seen.items():
            facts = tuple(getattr(result, name) for name in _FACTS)
            mine = self._written.setdefault(self._ddb, {})
            written = mine.get((self._table, domain))
            if written is not None and written[0] == facts and now - written[1] < REFRESH_SECONDS:
                continue
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=to_item(
                        {
                            "pk": f"TLSSEEN#{domain}",
                            "sk": "LAST",
                            **dict(zip(_FACTS, facts, strict=True)),
                            "at": now_iso(),
                            "expires_at": int(time.time()) + KEEP_SECONDS,
                        }
                    ),
                )
                mine[(self._table, domain)] = (facts, now)
            except Exception:
                logger.exception("could not record the TLS seen", extra={"domain": domain})

    def last(self, domain: str) -> dict[str, object] | None:
        item = self._ddb.get_item(TableName=self._table, Key=to_item({"pk": f"TLSSEEN#{domain.lower()}", "sk": "LAST"}))
        if "Item" not in item:
            return None
        values = from_item(item["Item"])
        return {k: values.get(k) for k in ("mx_host", "tls", "tls_version", "tls_verified", "tls_policy", "at")}
