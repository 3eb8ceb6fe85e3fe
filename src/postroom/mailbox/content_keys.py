"""Where a received message's content lives in the inbound bucket: the MIME as SES's S3 action wrote it
(``inbound/<receipt id>``, the key SES's receipt rule is given), and what the filer parsed out of it (``parsed/``).
The filer writes these keys and the mailbox API reads them; both import them from here."""

from __future__ import annotations

RAW_PREFIX = "inbound/"
PARSED_PREFIX = "parsed/"


def raw_key(receipt_id: str) -> str:
    return f"{RAW_PREFIX}{receipt_id}"


def parsed_key(receipt_id: str) -> str:
    return f"{PARSED_PREFIX}{receipt_id}/message.json"


def part_key(receipt_id: str, part_id: str) -> str:
    return f"{PARSED_PREFIX}{receipt_id}/parts/{part_id}"
