"""What the events feature adds to the delivery worker: the suppression filter, the event observer, the link
decorator (tracking, List-Unsubscribe) and the reputation breaker's hold, as keyword arguments for
:class:`postroom.deliver.deliverer.Deliverer`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from postroom.core import aws
from postroom.core.clock import now_iso
from postroom.core.sending_pause import PauseHold
from postroom.deliver.failover import FailoverRouter, PathSwitch
from postroom.deliver.tls_sightings import TlsSightings
from postroom.events.event_model import Event, EventType, new_event_id
from postroom.events.observer import EventObserver
from postroom.events.parking import EventParking
from postroom.events.recorder import Pending
from postroom.suppression.suppression_filter import SuppressionFilter
from postroom.tracking.decorate import LinkDecorator
from postroom.wiring.event_services import event_services

if TYPE_CHECKING:
    from postroom.wiring.event_services import EventServices

logger = Logger(child=True)


def delivery_hooks() -> dict[str, list[Any]]:
    svc = event_services()
    queue_url = svc.config.events_queue_url
    parking = EventParking(aws.client("sqs"), queue_url) if queue_url else None
    reputation = svc.core.settings.reputation
    table = svc.core.settings.table
    return {
        # A paused tenant's queued mail waits (postroom.core.sending_pause); no hold while the breaker is off.
        "holds": [PauseHold(svc.pauses, reputation.hold_seconds)] if reputation.enabled else [],
        "filters": [SuppressionFilter(svc.suppressions)],
        # TlsSightings: what explain reports as the STARTTLS seen on the last connection to a recipient domain.
        "observers": [EventObserver(svc.recorder, parking), TlsSightings(aws.client("dynamodb"), table)],
        "decorators": [LinkDecorator(svc.signer)],
        "routers": [_failover(svc)] if svc.core.settings.failover_domains else [],
    }


def _failover(svc: EventServices) -> FailoverRouter:
    settings = svc.core.settings

    def switched(switch: PathSwitch) -> None:
        at = now_iso()
        event = Event(
            id=new_event_id(),
            type=EventType.PATH_SWITCHED,
            message_id=switch.message_id,
            occurred_at=at,
            recorded_at=at,
            source="postroom",
            details={"domain": switch.domain, "to": switch.to.value, "reason": switch.reason},
        )
        try:
            svc.recorder.record(switch.tenant, [Pending(event, f"path_switched:{event.id}")])
        except Exception:
            logger.exception("could not record the path switch event", extra={"domain": switch.domain})

    return FailoverRouter(
        aws.client("dynamodb"),
        settings.table,
        domains=settings.failover_domains,
        failover_after=settings.failover_after,
        hold_seconds=settings.failover_hold_seconds,
        on_switch=switched,
    )
