"""What receiving builds: the filer the inbound function runs, the bounce processor behind the return path, and the
internal delivery agent the worker uses for Postroom's own inbound domains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.core import aws
from postroom.mailbox.mailbox_store import MailboxStore
from postroom.receive.filing import Filer
from postroom.receive.mailbox_agent import InternalDeliveryAgent
from postroom.wiring.services import services

if TYPE_CHECKING:
    from postroom.core.settings import Settings
    from postroom.deliver.deliverer import LocalAgent
    from postroom.receive.bounces.return_path_mail import BounceProcessor


def filer() -> Filer:
    svc = services()
    return Filer(
        settings=svc.settings,
        store=MailboxStore(aws.client("dynamodb"), svc.settings.table),
        s3=aws.client("s3"),
        bounces=bounce_processor(),
    )


def bounce_processor() -> BounceProcessor | None:
    """What takes mail for the return path, when the stack has a return-path domain."""
    from postroom.receive.bounces.return_path_mail import BounceProcessor
    from postroom.wiring.event_services import event_services

    events = event_services()
    return_path = events.return_path()
    if return_path is None:
        return None
    return BounceProcessor(
        return_path=return_path, messages=events.core.messages, recorder=events.recorder, events=events.events
    )


def internal_delivery_agents(settings: Settings) -> list[LocalAgent]:
    """The worker's local agents: internal delivery when the stack has inbound domains."""
    if not settings.inbound_domains or not settings.inbound_bucket:
        return []
    return [InternalDeliveryAgent(settings=settings, filer=filer(), s3=aws.client("s3"))]
