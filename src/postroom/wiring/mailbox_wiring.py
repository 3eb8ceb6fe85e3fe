"""What the mailbox API builds: the mailbox index and content over the stack's table and inbound bucket."""

from __future__ import annotations

from postroom.core import aws
from postroom.mailbox.mailbox_content import MailService
from postroom.mailbox.mailbox_store import MailboxStore
from postroom.wiring.services import services


def mail_service() -> MailService:
    settings = services().settings
    return MailService(MailboxStore(aws.client("dynamodb"), settings.table), aws.client("s3"), settings.inbound_bucket)
