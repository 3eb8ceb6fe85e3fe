"""Uploads: attachments that travel beside the send request instead of inside it.

API Gateway caps a request at 10 MB and Lambda at 6 MB, while SES takes a message of 40 MB. ``POST /v1/uploads`` answers
a presigned S3 POST (its policy holds the size range and the content type) and an ``upl_`` id; the caller uploads the
file straight to S3 and names the id in an attachment (``{"filename", "upload_id"}``). The accept path checks that the
object exists and counts its size; the worker reads it when it builds the MIME (:class:`UploadReader`).

    Object  s3://<bucket>/uploads/<tenant>/<upl_ id>   the file as uploaded; Content-Type from the policy

An upload belongs to its tenant: the key carries the tenant, so one tenant's id is not found under another's.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from postroom.core.clock import isoformat, utcnow
from postroom.core.errors import PayloadTooLargeError, ValidationFailedError
from postroom.core.ids import ulid

if TYPE_CHECKING:
    from postroom.accept.models import SendRequest
    from postroom.core.message_record import MessageRecord

__all__ = ["REFUSED_EXTENSIONS", "UploadReader", "UploadStore"]

UPLOAD_URL_SECONDS = 900  # how long the presigned POST may be used
# File types Amazon SES refuses as attachments ("Unsupported attachment types" in the SES developer guide): refused
# at upload time rather than at the first send attempt.
REFUSED_EXTENSIONS = frozenset(
    {
        "ade",
        "adp",
        "app",
        "asp",
        "bas",
        "bat",
        "cer",
        "chm",
        "cmd",
        "com",
        "cpl",
        "crt",
        "csh",
        "der",
        "exe",
        "fxp",
        "gadget",
        "hlp",
        "hta",
        "inf",
        "ins",
        "isp",
        "its",
        "js",
        "jse",
        "ksh",
        "lib",
        "lnk",
        "mad",
        "maf",
        "mag",
        "mam",
        "maq",
        "mar",
        "mas",
        "mat",
        "mau",
        "mav",
        "maw",
        "mda",
        "mdb",
        "mde",
        "mdt",
        "mdw",
        "mdz",
        "msc",
        "msh",
        "msh1",
        "msh2",
        "mshxml",
        "msh1xml",
        "msh2xml",
        "msi",
        "msp",
        "mst",
        "ops",
        "pcd",
        "pif",
        "plg",
        "prf",
        "prg",
        "reg",
        "scf",
        "scr",
        "sct",
        "shb",
        "shs",
        "sys",
        "ps1",
        "ps1xml",
        "ps2",
        "ps2xml",
        "psc1",
        "psc2",
        "tmp",
        "url",
        "vb",
        "vbe",
        "vbs",
        "vps",
        "vsmacros",
        "vss",
        "vst",
        "vsw",
        "vxd",
        "ws",
        "wsc",
        "wsf",
        "wsh",
        "xnk",
    }
)


def upload_key(tenant: str, upload_id: str) -> str:
    return f"uploads/{tenant}/{upload_id}"


class UploadStore:
    def __init__(self, s3: Any, bucket: str, *, max_bytes: int, linkable: bool = False) -> None:
        """``linkable``: oversize-safe attachments are on, so an upload that does not fit a recipient's limit (or
        SES's) becomes a link; it then does not count towards the message size limit at accept time."""
        self._s3 = s3
        self._bucket = bucket
        self.max_bytes = max_bytes
        self._linkable = linkable

    def create(self, tenant: str, *, filename: str, content_type: str, size: int) -> dict[str, object]:
        """A new upload id and the presigned POST that stores the file under it."""
        extension = filename.rpartition(".")[2].lower() if "." in filename else ""
        if extension in REFUSED_EXTENSIONS:
            raise ValidationFailedError(f"SES does not send .{extension} attachments", field="filename")
        if size > self.max_bytes:
            raise PayloadTooLargeError(f"{size} bytes; an upload may have at most {self.max_bytes}", field="size")
        upload_id = f"upl_{ulid()}"
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=upload_key(tenant, upload_id),
            Fields={"Content-Type": content_type},
            # S3 refuses a body outside the range or with another type: the limits hold without Postroom seeing it.
            Conditions=[["content-length-range", 1, min(size, self.max_bytes)], {"Content-Type": content_type}],
            ExpiresIn=UPLOAD_URL_SECONDS,
        )
        return {
            "id": upload_id,
            "upload": {"method": "POST", "url": post["url"], "fields": post["fields"]},
            "max_bytes": min(size, self.max_bytes),
            "expires_at": isoformat(utcnow() + timedelta(seconds=UPLOAD_URL_SECONDS)),
        }

    def describe(self, tenant: str, upload_id: str) -> tuple[int, str | None]:
        """The uploaded object's size and content type; ValidationFailedError when it is not (yet) there."""
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=upload_key(tenant, upload_id))
        except ClientError:
            raise ValidationFailedError(
                f"upload {upload_id} does not exist or has not been uploaded yet", field="attachments"
            ) from None
        return int(head["ContentLength"]), head.get("ContentType")

    def check(self, tenant: str, request: SendRequest) -> None:
        """The accept path's check of a request's upload references: each exists and is counted in the size."""
        for attachment in request.attachments:
            if attachment.upload_id is None:
                continue
            size, content_type = self.describe(tenant, attachment.upload_id)
            if size > self.max_bytes:
                raise PayloadTooLargeError(f"upload {attachment.upload_id} is {size} bytes", field="attachments")
            attachment._upload_size = 0 if self._linkable else size
            if attachment.content_type is None and content_type:
                attachment.content_type = content_type

    def read(self, tenant: str, upload_id: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=upload_key(tenant, upload_id))["Body"].read()
        return body


class UploadReader:
    """The worker's request resolver (``Deliverer(resolvers=...)``): fills each upload reference with the file, so
    the MIME builder sees an ordinary attachment."""

    def __init__(self, store: UploadStore) -> None:
        self._store = store

    def resolve(self, record: MessageRecord, request: SendRequest) -> SendRequest:
        if not any(attachment.upload_id for attachment in request.attachments):
            return request
        attachments = [
            attachment
            if attachment.upload_id is None
            else attachment.model_copy(
                update={
                    "content": base64.b64encode(self._store.read(record.tenant, attachment.upload_id)).decode(),
                    "upload_id": None,
                }
            )
            for attachment in request.attachments
        ]
        return request.model_copy(update={"attachments": attachments})
