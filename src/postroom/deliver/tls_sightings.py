"""The TLS of the last direct-SMTP session per recipient domain, for explain's "STARTTLS seen on the last connection".

    TLS seen  pk=TLSSEEN#<recipient domain>  sk=LAST  mx_host, tls, tls_version, tls_verified, tls_policy, at,
                                                      expires_at (TTL, 30 days)

An AttemptObserver: one PutItem per recipient domain of an SMTP attempt (the recipients of one domain share one
session). It must not raise: a failed write is logged and delivery goes on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core.clock import now_iso
from postroom.core.dynamo import from_item, to_item

if TYPE_CHECKING:
    from postroom.core.delivery_results import RecipientResult
    from postroom.core.message_record import MessageRecord

__all__ = ["TlsSightings"]

logger = Logger(child=True)
KEEP_SECONDS = 30 * 24 * 3600


class TlsSightings:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def attempted(self, record: MessageRecord, results: list[tuple[RecipientResult, str]]) -> None:
        seen: dict[str, RecipientResult] = {}
        for result, agent in results:
            if agent == "smtp" and result.mx_host and result.tls is not None:
                seen.setdefault(result.recipient.rpartition("@")[2].lower(), result)
        for domain, result in seen.items():
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=to_item(
                        {
                            "pk": f"TLSSEEN#{domain}",
                            "sk": "LAST",
                            "mx_host": result.mx_host,
                            "tls": result.tls,
                            "tls_version": result.tls_version,
                            "tls_verified": result.tls_verified,
                            "tls_policy": result.tls_policy,
                            "at": now_iso(),
                            "expires_at": int(time.time()) + KEEP_SECONDS,
                        }
                    ),
                )
            except Exception:
                logger.exception("could not record the TLS seen", extra={"domain": domain})

    def last(self, domain: str) -> dict[str, object] | None:
        item = self._ddb.get_item(TableName=self._table, Key=to_item({"pk": f"TLSSEEN#{domain.lower()}", "sk": "LAST"}))
        if "Item" not in item:
            return None
        values = from_item(item["Item"])
        return {k: values.get(k) for k in ("mx_host", "tls", "tls_version", "tls_verified", "tls_policy", "at")}
