"""The objects the events, suppression, webhook and tracking code needs, built once per execution environment.

They are rebuilt whenever :func:`postroom.wiring.services.services` is (tests and the local stack reset that after
changing
the environment), so the two containers never disagree about the table or the endpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from postroom.core import aws
from postroom.core.sending_pause import SendingPauses
from postroom.events.event_store import EventStore
from postroom.events.recorder import EventRecorder
from postroom.events.reputation import ReputationBreaker
from postroom.suppression.suppression_store import SuppressionStore
from postroom.webhooks.fanout import WebhookFanout
from postroom.webhooks.subscriptions import WebhookStore
from postroom.wiring.services import Services, services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    from postroom.core.event_settings import EventSettings
    from postroom.deliver.return_path import ReturnPath
    from postroom.tracking.tokens import LinkSigner

# How long a Lambda environment keeps the signing key before reading it again (a rotated key takes effect by then).
SIGNING_KEY_MAX_AGE_SECONDS = 300


@dataclass
class EventServices:
    core: Services

    @property
    def config(self) -> EventSettings:
        """The events/webhooks/tracking part of the one Settings, validated with it at cold start."""
        return self.core.settings.events

    @cached_property
    def events(self) -> EventStore:
        return EventStore(
            aws.client("dynamodb"), self.core.settings.table, retention_days=self.config.event_retention_days
        )

    @cached_property
    def suppressions(self) -> SuppressionStore:
        return SuppressionStore(aws.client("dynamodb"), self.core.settings.table)

    @cached_property
    def webhooks(self) -> WebhookStore:
        return WebhookStore(aws.client("dynamodb"), self.core.settings.table)

    @cached_property
    def fanout(self) -> WebhookFanout | None:
        if not self.config.webhook_queue_url:
            return None
        return WebhookFanout(self.webhooks, aws.client("sqs"), self.config.webhook_queue_url)

    @cached_property
    def pauses(self) -> SendingPauses:
        return SendingPauses(aws.client("dynamodb"), self.core.settings.table)

    @cached_property
    def breaker(self) -> ReputationBreaker | None:
        """The reputation breaker, or None while it is off (POSTROOM_REPUTATION_BREAKER, off by default)."""
        settings = self.core.settings.reputation
        if not settings.enabled:
            return None
        return ReputationBreaker(aws.client("dynamodb"), self.core.settings.table, settings, self.pauses)

    @cached_property
    def recorder(self) -> EventRecorder:
        return EventRecorder(
            events=self.events, suppressions=self.suppressions, fanout=self.fanout, reputation=self.breaker
        )

    def signer(self) -> LinkSigner | None:
        """The tracking/unsubscribe link signer, or None when links are not configured (no public URL or key)."""
        from postroom.tracking.tokens import LinkSigner

        if not self.config.tracking_enabled:
            return None
        return LinkSigner(self._signing_key(), self.config.public_url)

    def return_path(self) -> ReturnPath | None:
        """The return path (VERP envelope senders and their check), or None when no return-path domain is set.
        Its tags are signed with the link signing key, which every stack has (a deployment that configures none
        gets unsigned addresses, and bounces are tied to messages by their quoted Message-ID alone)."""
        from postroom.deliver.return_path import ReturnPath

        domain = self.core.settings.return_path_domain
        if not domain:
            return None
        configured = self.config.signing_secret or self.config.signing_secret_arn
        return ReturnPath(domain, self._signing_key() if configured else None)

    def _signing_key(self) -> str:
        if self.config.signing_secret:
            return self.config.signing_secret
        return str(self._secrets.get(self.config.signing_secret_arn, max_age=SIGNING_KEY_MAX_AGE_SECONDS))

    @cached_property
    def _secrets(self) -> SecretsProvider:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        # Our own client (not Powertools' module-wide default) so it follows reset_services() to a new endpoint.
        return SecretsProvider(boto3_client=aws.client("secretsmanager"))


_lock = threading.Lock()
_current: EventServices | None = None


def event_services() -> EventServices:
    global _current
    core = services()
    current = _current
    if current is None or current.core is not core:
        with _lock:
            if _current is None or _current.core is not core:
                built = EventServices(core)
                _ = (built.events, built.suppressions, built.webhooks, built.fanout, built.recorder)
                _current = built
            current = _current
    return current
