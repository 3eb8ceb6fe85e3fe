"""``/v1/stats``: what the console's Overview shows - event counts for the last 24 hours and 7 days, the bounce and
complaint rates against the marks at which SES reviews an account, the delivery queue's depth and its dead letters.

The counts come from the hourly counters the event store keeps beside each event (``postroom.events.event_store``,
"Hourly counts"): the same events the worker, SES notifications and the tracking links record, and that the
dashboard's outcome metrics count, read in at most 16 small Queries whatever the volume.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.depends import Depends

from postroom.api.deps import require
from postroom.core import aws
from postroom.core.auth import Principal, Scope
from postroom.wiring.event_services import event_services
from postroom.wiring.services import services

router = Router()
logger = Logger(child=True)

# SES puts an account under review at a 5 % bounce rate or a 0.1 % complaint rate (its "review" thresholds).
BOUNCE_REVIEW = 0.05
COMPLAINT_REVIEW = 0.001
WEEK_HOURS = 7 * 24


def _sum(hours: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for hour in hours:
        for name, count in hour.items():
            total[name] = total.get(name, 0) + count
    return total


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _depth(queue_url: str, *names: str) -> int | None:
    """The queue's approximate message count (the given attributes summed); None when it cannot be read."""
    try:
        attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(names))
    except Exception:  # noqa: BLE001 - the Overview shows "unknown" rather than failing for a missing permission
        logger.warning("could not read a queue's depth", extra={"queue": queue_url.rsplit("/", 1)[-1]})
        return None
    return sum(int(attributes.get("Attributes", {}).get(name, 0)) for name in names)


@router.get("/", summary="Counts for the last 24 h and 7 days, bounce and complaint rates, queue depth")
def stats(principal: Annotated[Principal, Depends(require(Scope.MESSAGES_READ))]) -> dict[str, Any]:
    hours = event_services().events.counts(principal.tenant, hours=WEEK_HOURS)
    day, week = _sum(hours[:24]), _sum(hours)
    delivered, bounced = week.get("delivered", 0), week.get("bounced", 0)
    settings = services().settings
    return {
        "last_24h": day,
        "last_7d": week,
        "rates": {
            "bounce": _rate(bounced, delivered + bounced),
            "complaint": _rate(week.get("complained", 0), delivered),
            "bounce_review": BOUNCE_REVIEW,
            "complaint_review": COMPLAINT_REVIEW,
        },
        # The queues are the stack's, shared by its tenants.
        "queue": {
            "waiting": _depth(settings.queue_url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"),
            "dead_letters": _depth(settings.dlq_url, "ApproximateNumberOfMessages"),
        },
        "dashboard_url": settings.dashboard_url or None,
    }
