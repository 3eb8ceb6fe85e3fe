"""Settings of the events, suppression, webhook and tracking features: ``Settings.events``, a sub-model of
:class:`postroom.core.settings.Settings`, read from the environment and validated with it once at cold start (kept in
their own model so the feature's knobs stay together)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EventSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # How long events stay in the feed and the timelines (DynamoDB TTL). The feed cannot be read further back.
    event_retention_days: int = Field(default=30, ge=1, le=365)
    # The feed only hands out events recorded at least this long ago. Event ids are made just before the write that
    # stores them, so two writers can commit out of id order; holding back the last few seconds means a cursor never
    # skips an event that was still being written, and DynamoDB's eventually consistent reads of the feed have caught
    # up (the price: events show up in the feed this much later).
    event_feed_settle_seconds: float = Field(default=5.0, ge=0, le=300)
    events_queue_url: str = ""  # the SES events queue (the events function puts early reports back on it)
    webhook_queue_url: str = ""  # empty: webhooks are not delivered (subscriptions can still be managed)
    webhook_dlq_url: str = ""
    # Only the local stack sets this: webhook URLs that resolve to loopback, private or link-local addresses (and
    # plain http) are refused everywhere else, so a subscription cannot make Postroom call into its own network.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Delays before each retry. The default is Standard Webhooks' suggestion (as Svix runs it): 5 s, 5 min, 30 min,
    # 2 h, 5 h, 10 h, 10 h - eight attempts over about 28 hours, so a receiver that is down for a day misses nothing.
    webhook_retry_schedule: tuple[int, ...] = Field(default=(5, 300, 1800, 7200, 18000, 36000, 36000))
    # A subscription is disabled once it has failed at least webhook_disable_min_failures attempts in a row over at
    # least webhook_disable_after_seconds (5 days, as Svix does): a long outage, not a bad hour.
    webhook_disable_after_seconds: int = Field(default=5 * 24 * 3600, ge=0)
    webhook_disable_min_failures: int = Field(default=10, ge=1)
    # Base URL of the public tracking and unsubscribe routes (/t/...), e.g. https://abc.execute-api.../api.
    public_url: str = ""
    signing_secret_arn: str = ""  # Secrets Manager secret whose value signs tracking and unsubscribe links
    signing_secret: str = ""  # the value itself (tests, or a deployment that injects it another way)

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("a comma list of seconds, e.g. 5,300,1800") from None
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_bounds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(delay < 0 or delay > 43200 for delay in value):
            raise ValueError("each delay must be 0-43200 s (SQS allows at most 12 h of visibility timeout)")
        return value

    @property
    def webhook_max_attempts(self) -> int:
        return len(self.webhook_retry_schedule) + 1

    @property
    def tracking_enabled(self) -> bool:
        return bool(self.public_url and (self.signing_secret or self.signing_secret_arn))
