"""What the mailbox API does beyond the index: message documents and presigned URLs from S3, and removing the S3
objects of a received message once no mailbox copy uses them any more."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools import Logger

from postroom.mailbox.content_keys import PARSED_PREFIX, parsed_key, part_key, raw_key
from postroom.mailbox.mailbox_store import MailboxStore, public_message

logger = Logger(child=True)

URL_SECONDS = 300  # presigned URLs: long enough to start a download, short enough not to be worth leaking


class MailService:
    def __init__(self, store: MailboxStore, s3: Any, bucket: str) -> None:
        self.store = store
        self._s3 = s3
        self._bucket = bucket

    def document(self, item: dict[str, Any]) -> dict[str, Any]:
        """The index entry plus the parsed document (headers, bodies, attachments)."""
        body = self._s3.get_object(Bucket=self._bucket, Key=parsed_key(item["receipt"]))["Body"].read()
        parsed = json.loads(body)
        base = f"/v1/mail/{item['id']}"
        attachments = [{**a, "url": f"{base}/attachments/{a['part']}"} for a in parsed.get("attachments", [])]
        return {
            **public_message(item),
            "headers": parsed.get("headers", []),
            "reply_to": parsed.get("reply_to", []),
            "date": parsed.get("date"),
            "text": parsed.get("text"),
            "text_truncated": parsed.get("text_truncated", False),
            "html": parsed.get("html"),
            "html_sanitized": parsed.get("html_sanitized"),
            "html_truncated": parsed.get("html_truncated", False),
            "bodies": {
                kind: f"{base}/attachments/{part}"
                for kind, part in parsed.get("bodies", {}).items()
                if parsed.get("text_truncated" if kind == "text/plain" else "html_truncated")
            },
            "attachments": attachments,
            "raw_url": f"{base}/raw",
        }

    def part_names(self, item: dict[str, Any]) -> dict[str, dict[str, Any]]:
        body = self._s3.get_object(Bucket=self._bucket, Key=parsed_key(item["receipt"]))["Body"].read()
        parsed = json.loads(body)
        parts = {a["part"]: a for a in parsed.get("attachments", [])}
        for kind, part in parsed.get("bodies", {}).items():
            if parsed.get("text_truncated" if kind == "text/plain" else "html_truncated"):
                parts[part] = {"part": part, "filename": None, "content_type": kind}
        return parts

    def raw_url(self, item: dict[str, Any]) -> str:
        return self._presign(raw_key(item["receipt"]), "message/rfc822", f"{item['id']}.eml")

    def raw_urls(self, items: list[dict[str, Any]], receipts: list[str]) -> None:
        """Add each listed message's presigned raw URL (``raw_url``): a mail client syncing a mailbox downloads
        straight from S3 instead of asking the API once per message. Presigning is local computation, no call."""
        for item, receipt in zip(items, receipts, strict=True):
            item["raw_url"] = self.raw_url({"id": item["id"], "receipt": receipt})

    def part_url(self, item: dict[str, Any], part: dict[str, Any]) -> str:
        filename = part.get("filename") or f"part-{part['part']}"
        return self._presign(part_key(item["receipt"], part["part"]), part["content_type"], filename)

    def _presign(self, key: str, content_type: str, filename: str) -> str:
        # RFC 6266: filename* carries any name; the plain filename is an ASCII fallback.
        fallback = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
        disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=URL_SECONDS,
            )
        )

    def expunge(self, mail_id: str) -> None:
        receipt_id = self.store.expunge(mail_id)
        receipt = self.store.receipt(receipt_id)
        if receipt is not None and int(receipt.get("refs", 0)) <= 0:
            self._delete_objects(receipt_id)

    def _delete_objects(self, receipt_id: str) -> None:
        keys = [raw_key(receipt_id)]
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{PARSED_PREFIX}{receipt_id}/"):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            self._s3.delete_objects(Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        self.store.forget_receipt(receipt_id)
        logger.info("received message removed from S3", extra={"receipt": receipt_id, "objects": len(keys)})
