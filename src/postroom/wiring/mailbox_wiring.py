"""What the mailbox API builds: the mailbox index and content over the stack's table and inbound bucket.

The addresses the stack's settings name (the per-domain catch-all addresses, ``InboundCatchAll``) are registered here,
once per execution environment and idempotently, before the API answers anything: a mail client's account wizard
logs in as the catch-all address right after deployment, before any mail has arrived to create it, and every refused
attempt counts toward the bridge's failed-login lockout. The inbound function still creates one on first use (a
message can arrive before anyone asks the API), through the same idempotent ``create_address``.
"""

from __future__ import annotations

import threading

from postroom.core import aws
from postroom.core.settings import Settings
from postroom.mailbox.mailbox_content import MailService
from postroom.mailbox.mailbox_store import MailboxStore
from postroom.receive.filing import Filer
from postroom.receive.routing import catch_all_addresses
from postroom.wiring.services import services

_provision_lock = threading.Lock()
_provisioned_for: Settings | None = None  # the settings whose addresses exist; new after reset_services()


def mail_service() -> MailService:
    settings = services().settings
    service = MailService(
        MailboxStore(aws.client("dynamodb"), settings.table), aws.client("s3"), settings.inbound_bucket
    )
    _provision(service.store, settings)
    return service


def _provision(store: MailboxStore, settings: Settings) -> None:
    global _provisioned_for
    if _provisioned_for is settings:
        return
    with _provision_lock:
        if _provisioned_for is not settings:
            for address in catch_all_addresses(settings):
                store.create_address(address)
            _provisioned_for = settings


def appender() -> Filer:
    """What stores a message a client hands over (IMAP APPEND) into a mailbox: the filer, without routing or bounces."""
    settings = services().settings
    store = MailboxStore(aws.client("dynamodb"), settings.table)
    return Filer(settings=settings, store=store, s3=aws.client("s3"))
