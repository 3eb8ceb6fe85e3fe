"""What EventBridge Scheduler does for one-time schedules, on loopback: moto stores schedules but never fires them.

A thread lists the schedules of every group; when an ``at(...)`` schedule is due it performs the schedule's target
action - SendMessage of its ``Input`` to its target queue (the only target the template uses) - and then deletes the
schedule when ``ActionAfterCompletion`` is ``DELETE``, as Scheduler does. Rate and cron schedules are left alone.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("postroom.local")

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


def due_time(expression: str, timezone: str | None) -> datetime | None:
    """The moment an ``at(yyyy-mm-ddThh:mm:ss)`` expression names, in its time zone; None for rate()/cron()."""
    match = _AT.match(expression.strip())
    if match is None:
        return None
    local = datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone or "UTC"))
    return local.astimezone(UTC)


class ScheduleFirer(threading.Thread):
    def __init__(self, *, scheduler: Any, sqs: Any, interval: float = 0.5) -> None:
        super().__init__(name="schedule-firer", daemon=True)
        self._scheduler = scheduler
        self._sqs = sqs
        self._interval = interval
        self._stopping = threading.Event()
        # (group, name, expression) of schedules that fired and stay (ActionAfterCompletion NONE): fire them once.
        self._fired: set[tuple[str, str, str]] = set()
        self.fired = 0  # how many schedules fired (for tests and the status line)

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.fire_due()
            except Exception:  # the emulator went away at shutdown, or a transient error: keep going
                if self._stopping.is_set():
                    return
                log.exception("firing schedules failed; retrying")

    def fire_due(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        count = 0
        for summary in self._schedules():
            group, name = summary.get("GroupName", "default"), summary["Name"]
            schedule = self._scheduler.get_schedule(Name=name, GroupName=group)
            expression = schedule.get("ScheduleExpression", "")
            due = due_time(expression, schedule.get("ScheduleExpressionTimezone"))
            if due is None or due > now or schedule.get("State") == "DISABLED":
                continue
            if (group, name, expression) in self._fired:
                continue
            self._perform(schedule["Target"])
            count += 1
            self.fired += 1
            if schedule.get("ActionAfterCompletion") == "DELETE":
                self._scheduler.delete_schedule(Name=name, GroupName=group)
            else:
                self._fired.add((group, name, expression))
        return count

    def _schedules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for group_page in self._scheduler.get_paginator("list_schedule_groups").paginate():
            for group in group_page.get("ScheduleGroups", []):
                for page in self._scheduler.get_paginator("list_schedules").paginate(GroupName=group["Name"]):
                    found.extend(page.get("Schedules", []))
        return found

    def _perform(self, target: dict[str, Any]) -> None:
        arn = target["Arn"]
        if not arn.startswith("arn:aws:sqs:"):
            log.warning("schedule target %s is not an SQS queue; the local firer only sends to queues", arn)
            return
        _, _, _, _region, account, queue_name = arn.split(":", 5)
        url = self._sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=target.get("Input", ""))
