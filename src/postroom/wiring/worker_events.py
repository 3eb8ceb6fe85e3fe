"""What the events feature adds to the delivery worker: the suppression filter, the event observer, the link
decorator (tracking, List-Unsubscribe) and the reputation breaker's hold, as keyword arguments for
:class:`postroom.deliver.deliverer.Deliverer`."""

from __future__ import annotations

from typing import Any

from postroom.core import aws
from postroom.core.sending_pause import PauseHold
from postroom.deliver.tls_sightings import TlsSightings
from postroom.events.observer import EventObserver
from postroom.events.parking import EventParking
from postroom.suppression.suppression_filter import SuppressionFilter
from postroom.tracking.decorate import LinkDecorator
from postroom.wiring.event_services import event_services


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
    }
