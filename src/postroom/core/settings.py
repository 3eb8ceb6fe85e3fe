"""Settings, read from the environment once and validated loudly at cold start.

Lambda functions get these from template.yaml (Globals.Function.Environment); the local stack derives the same
variables from the same template. A missing or malformed setting fails the first invocation with a message naming
the variable, instead of failing later on a request that happens to need it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from postroom.core.deliverability_settings import DeliverabilitySettings
from postroom.core.event_settings import EventSettings
from postroom.core.reputation_settings import ReputationSettings


class DeliveryPath(StrEnum):
    SES = "ses"
    SMTP = "smtp"
    RELAY = "relay"  # an upstream smart host (POSTROOM_RELAY_*)


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the environment variable."""


# SES accepts at most 40 MB per message *after* base64 encoding; keep 1 MB of headroom for headers that are added
# later (DKIM signatures, Received, SES's own headers).
SES_MAX_MESSAGE_BYTES = 40 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = SES_MAX_MESSAGE_BYTES - 1024 * 1024
DEFAULT_UPLOAD_MAX_BYTES = 30 * 1024 * 1024
# A synchronous Lambda invocation carries at most 6 MB of request payload (API Gateway itself allows 10 MB), so the
# JSON send API cannot accept more than this on AWS; the local stack enforces the same figure so behaviour matches.
DEFAULT_MAX_REQUEST_BYTES = 6 * 1024 * 1024
# The delivery queue's redrive maxReceiveCount in template.yaml (a test keeps the two equal). SQS moves a message to
# the dead-letter queue after this many receives, with no reason and without touching its record.
DELIVERY_QUEUE_MAX_RECEIVE_COUNT = 40


class SendingDomain(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    delivery: DeliveryPath | None = None  # None: use the stack's default delivery path


def parse_sending_domains(spec: str) -> dict[str, SendingDomain]:
    """``"example.com,shop.example=smtp"`` → domain → SendingDomain. Domains are compared lower-case."""
    domains: dict[str, SendingDomain] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, _, path = entry.partition("=")
        name = name.strip().lower().rstrip(".")
        if not name or "@" in name or " " in name:
            raise ValueError(f"not a domain: {entry!r}")
        try:
            delivery = DeliveryPath(path.strip().lower()) if path.strip() else None
        except ValueError:
            raise ValueError(f"delivery for {name!r} must be 'ses', 'smtp' or 'relay', not {path.strip()!r}") from None
        domains[name] = SendingDomain(name=name, delivery=delivery)
    return domains


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    queue_url: str = Field(min_length=1)
    dlq_url: str = Field(min_length=1)
    sending_domains: dict[str, SendingDomain] = Field(default_factory=dict)
    default_delivery: DeliveryPath = DeliveryPath.SES
    dns_nameservers: str = ""  # "host:port,…"; empty = the system resolver
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_timeout: float = Field(default=30.0, gt=0)
    smtp_tls_verify: bool = False
    helo_name: str = ""
    ses_configuration_set: str = ""
    max_request_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BYTES, gt=0)
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0, le=SES_MAX_MESSAGE_BYTES)
    # One upload (POST /v1/uploads): at most what fits in SES's 40 MB once base64 has grown it by a third.
    upload_max_bytes: int = Field(default=DEFAULT_UPLOAD_MAX_BYTES, gt=0, le=SES_MAX_MESSAGE_BYTES)
    # Oversize-safe attachments (postroom.deliver.attachment_links), off by default: "true" replaces the largest
    # attachments by expiring download links where a message exceeds the recipient MX's SIZE or a per-domain limit.
    attachment_links: bool = False
    # Failover SES ⇄ direct SMTP (postroom.deliver.failover): the sending domains it applies to (none by default),
    # how many failed attempts in a row on the primary switch, and how long the fallback holds before a probe.
    failover_domains: frozenset[str] = Field(default_factory=frozenset)
    failover_after: int = Field(default=3, ge=1, le=100)
    failover_hold_seconds: int = Field(default=600, ge=0, le=86400)
    attachment_link_limits: dict[str, int] = Field(default_factory=dict)  # recipient domain ("*": any) -> bytes
    attachment_link_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)  # SigV4's longest
    # Retry policy for transient failures (SMTP 4xx, unreachable hosts, SES throttling): exponential backoff from
    # retry_base_seconds, capped at retry_max_seconds (SQS allows at most 12 h of visibility timeout), until either
    # max_attempts or max_age_seconds is reached, whichever comes first. Postfix gives up after 5 days; 3 is the
    # default here because transactional mail (password resets) is worthless long before that.
    retry_base_seconds: int = Field(default=60, ge=0)
    retry_max_seconds: int = Field(default=3600, ge=0, le=43200)
    max_attempts: int = Field(default=25, ge=1, le=35)  # below poison_receive_count (checked below)
    max_age_seconds: int = Field(default=3 * 24 * 3600, gt=0)
    # A queued pointer SQS has handed to the worker this many times without an outcome (its processing keeps crashing
    # or timing out the function) is not attempted again: the worker gives up on it with a reason, as after
    # max_attempts. Just below the redrive's maxReceiveCount, so the worker - not the redrive, which gives no reason
    # and leaves the record "sending" - has the last word, and the receives in between retry a give-up that crashed.
    poison_receive_count: int = Field(
        default=DELIVERY_QUEUE_MAX_RECEIVE_COUNT - 2, ge=2, le=DELIVERY_QUEUE_MAX_RECEIVE_COUNT
    )
    # Smart-host relay (delivery "relay"): "host:port", AUTH mechanism, and the SSM/Secrets Manager name of its
    # JSON secret. TLS to the relay is mandatory and verified unless relay_tls_verify is false.
    relay_host: str = ""
    relay_auth: str = Field(default="plain", pattern="^(plain|xoauth2|none)$")
    relay_secret: str = ""
    relay_tls_verify: bool = True
    relay_ca_file: str = ""  # extra CA bundle for a relay with a private CA
    # Templates, idempotency, scheduling and commerce hooks (issue #5). Empty means "not configured": the features
    # that need them refuse with a clear error instead of failing at cold start for functions that never use them.
    idempotency_table: str = ""
    queue_arn: str = ""  # the delivery queue's ARN: the target of EventBridge Scheduler schedules
    dashboard_url: str = ""  # the stack's CloudWatch dashboard, linked from the console's Overview; empty locally
    schedule_group: str = ""
    scheduler_role_arn: str = ""
    commerce_queue_url: str = ""
    store_secret_prefix: str = ""  # Secrets Manager names of store webhook secrets: <prefix><store id>
    # Self-throttle (postroom.deliver.pacing): SES sends per second, 0 = the account's MaxSendRate (read with
    # GetAccount);
    # direct-SMTP messages per second to one recipient domain, 0 = not paced.
    ses_max_send_rate: float = Field(default=0, ge=0)
    domain_rate_per_second: float = Field(default=0, ge=0)
    # Public addresses direct SMTP leaves from (the NAT's Elastic IP), comma-separated: what `doctor` expects SPF to
    # authorise. Empty when unknown (no SMTP VPC).
    smtp_egress_ips: str = ""
    # Feature groups with their own sub-model, validated with the rest: events/webhooks/tracking and deliverability.
    events: EventSettings = Field(default_factory=EventSettings)
    deliverability: DeliverabilitySettings = Field(default_factory=DeliverabilitySettings)
    reputation: ReputationSettings = Field(default_factory=ReputationSettings)

    @model_validator(mode="after")
    def _dkim_for_sending_domains(self) -> Settings:
        # A selector for a domain Postroom never sends from is a typo that would leave the real domain unsigned.
        unknown = sorted(set(self.deliverability.dkim_selectors) - set(self.sending_domains))
        if unknown and self.sending_domains:
            raise ValueError(
                f"POSTROOM_DKIM_SELECTORS names {', '.join(unknown)}, not in POSTROOM_SENDING_DOMAINS (a typo would "
                "leave the real domain unsigned)"
            )
        return self

    # Inbound mail (see postroom.receive): the bucket SES stores received MIME in, the domains Postroom receives for,
    # and per-domain catch-all mailboxes ("shop.example=support": unknown recipients at shop.example are filed into
    # support@shop.example; a domain without one rejects unknown recipients).
    inbound_bucket: str = ""
    inbound_domains: frozenset[str] = Field(default_factory=frozenset)
    inbound_catch_all: dict[str, str] = Field(default_factory=dict)
    # The return-path (bounce) domain: direct SMTP and relay deliveries use the envelope sender
    # bounces+<message id>[.<tag>]@<domain> (VERP), so asynchronous bounces come back to Postroom instead of the
    # sender's own mailbox (postroom.deliver.return_path). Empty: the envelope sender is the From address.
    return_path_domain: str = ""

    @field_validator("sending_domains", mode="before")
    @classmethod
    def _parse_domains(cls, value: object) -> object:
        return parse_sending_domains(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _poison_above_attempts(self) -> Settings:
        # Each deferral is one receive too: at or below max_attempts, a message that is only being retried would be
        # given up as crashing.
        if self.poison_receive_count <= self.max_attempts:
            raise ValueError(
                f"POSTROOM_POISON_RECEIVE_COUNT ({self.poison_receive_count}) must be above POSTROOM_MAX_ATTEMPTS "
                f"({self.max_attempts}): every retry is a receive too"
            )
        return self

    @model_validator(mode="after")
    def _relay_configured(self) -> Settings:
        wants_relay = self.default_delivery is DeliveryPath.RELAY or any(
            d.delivery is DeliveryPath.RELAY for d in self.sending_domains.values()
        )
        if wants_relay and not self.relay_host:
            raise ValueError("delivery 'relay' is configured but POSTROOM_RELAY_HOST is empty")
        return self

    @field_validator("return_path_domain", mode="before")
    @classmethod
    def _parse_return_path_domain(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        domain = value.strip().lower().rstrip(".")
        if domain and ("@" in domain or " " in domain or "." not in domain):
            raise ValueError(f"not a domain: {value!r}")
        return domain

    @model_validator(mode="after")
    def _return_path_received(self) -> Settings:
        # Bounces to the return path arrive through the inbound path (the SES receipt rule takes InboundDomains): a
        # domain that is not received would send every DSN into the void while the sender's own mailbox got nothing.
        if self.return_path_domain and self.return_path_domain not in self.inbound_domains:
            raise ValueError(
                f"POSTROOM_RETURN_PATH_DOMAIN {self.return_path_domain} is not in POSTROOM_INBOUND_DOMAINS: Postroom "
                "would not receive the bounces sent to it (add it to InboundDomains)"
            )
        return self

    @property
    def relay_endpoint(self) -> tuple[str, int]:
        host, _, port = self.relay_host.rpartition(":")
        return (host, int(port)) if host and port.isdigit() else (self.relay_host, 587)

    @field_validator("failover_domains", mode="before")
    @classmethod
    def _parse_failover_domains(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("attachment_link_limits", mode="before")
    @classmethod
    def _parse_link_limits(cls, value: object) -> object:
        """``"example.org=10485760,*=26214400"`` → {domain: bytes}."""
        if not isinstance(value, str):
            return value
        limits: dict[str, int] = {}
        for entry in filter(None, (part.strip() for part in value.split(","))):
            domain, _, size = entry.partition("=")
            if not size.strip().isdigit():
                raise ValueError(f"{entry!r}: expected domain=bytes, e.g. example.org=10485760")
            limits[domain.strip().lower()] = int(size)
        return limits

    @field_validator("inbound_domains", mode="before")
    @classmethod
    def _parse_inbound_domains(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(d.strip().lower().rstrip(".") for d in value.split(",") if d.strip())
        return value

    @field_validator("inbound_catch_all", mode="before")
    @classmethod
    def _parse_catch_all(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        catch_all: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in value.split(","))):
            domain, _, local = entry.partition("=")
            if not domain.strip() or not local.strip() or "@" in local:
                raise ValueError(f"catch-all entries are domain=localpart, not {entry!r}")
            catch_all[domain.strip().lower().rstrip(".")] = local.strip().lower()
        return catch_all

    @property
    def helo(self) -> str:
        if self.helo_name:
            return self.helo_name
        return next(iter(self.sending_domains), "localhost")

    def delivery_for(self, domain: str) -> DeliveryPath:
        configured = self.sending_domains.get(domain.lower())
        return configured.delivery if configured and configured.delivery else self.default_delivery


_ENV = {
    "table": "POSTROOM_TABLE",
    "bucket": "POSTROOM_BUCKET",
    "queue_url": "POSTROOM_QUEUE_URL",
    "dlq_url": "POSTROOM_DLQ_URL",
    "sending_domains": "POSTROOM_SENDING_DOMAINS",
    "default_delivery": "POSTROOM_DEFAULT_DELIVERY",
    "dns_nameservers": "POSTROOM_DNS_NAMESERVERS",
    "smtp_port": "POSTROOM_SMTP_PORT",
    "smtp_timeout": "POSTROOM_SMTP_TIMEOUT",
    "smtp_tls_verify": "POSTROOM_SMTP_TLS_VERIFY",
    "helo_name": "POSTROOM_HELO_NAME",
    "ses_configuration_set": "POSTROOM_SES_CONFIGURATION_SET",
    "max_request_bytes": "POSTROOM_MAX_REQUEST_BYTES",
    "max_message_bytes": "POSTROOM_MAX_MESSAGE_BYTES",
    "upload_max_bytes": "POSTROOM_UPLOAD_MAX_BYTES",
    "attachment_links": "POSTROOM_ATTACHMENT_LINKS",
    "failover_domains": "POSTROOM_FAILOVER_DOMAINS",
    "failover_after": "POSTROOM_FAILOVER_AFTER",
    "failover_hold_seconds": "POSTROOM_FAILOVER_HOLD_SECONDS",
    "attachment_link_limits": "POSTROOM_ATTACHMENT_LINK_LIMITS",
    "attachment_link_seconds": "POSTROOM_ATTACHMENT_LINK_SECONDS",
    "retry_base_seconds": "POSTROOM_RETRY_BASE_SECONDS",
    "retry_max_seconds": "POSTROOM_RETRY_MAX_SECONDS",
    "max_attempts": "POSTROOM_MAX_ATTEMPTS",
    "max_age_seconds": "POSTROOM_MAX_AGE_SECONDS",
    "poison_receive_count": "POSTROOM_POISON_RECEIVE_COUNT",
    "relay_host": "POSTROOM_RELAY_HOST",
    "relay_auth": "POSTROOM_RELAY_AUTH",
    "relay_secret": "POSTROOM_RELAY_SECRET",
    "relay_tls_verify": "POSTROOM_RELAY_TLS_VERIFY",
    "relay_ca_file": "POSTROOM_RELAY_CA_FILE",
    "idempotency_table": "POSTROOM_IDEMPOTENCY_TABLE",
    "queue_arn": "POSTROOM_QUEUE_ARN",
    "dashboard_url": "POSTROOM_DASHBOARD_URL",
    "schedule_group": "POSTROOM_SCHEDULE_GROUP",
    "scheduler_role_arn": "POSTROOM_SCHEDULER_ROLE_ARN",
    "commerce_queue_url": "POSTROOM_COMMERCE_QUEUE_URL",
    "store_secret_prefix": "POSTROOM_STORE_SECRET_PREFIX",
    "ses_max_send_rate": "POSTROOM_SES_MAX_SEND_RATE",
    "domain_rate_per_second": "POSTROOM_DOMAIN_RATE_PER_SECOND",
    "smtp_egress_ips": "POSTROOM_SMTP_EGRESS_IPS",
    "inbound_bucket": "POSTROOM_INBOUND_BUCKET",
    "inbound_domains": "POSTROOM_INBOUND_DOMAINS",
    "inbound_catch_all": "POSTROOM_INBOUND_CATCH_ALL",
    "return_path_domain": "POSTROOM_RETURN_PATH_DOMAIN",
}


# The variables of each sub-model, under the sub-model's field name in Settings.
_SUB_ENV = {
    "events": {
        "event_retention_days": "POSTROOM_EVENT_RETENTION_DAYS",
        "event_feed_settle_seconds": "POSTROOM_EVENT_FEED_SETTLE_SECONDS",
        "events_queue_url": "POSTROOM_EVENTS_QUEUE_URL",
        "webhook_queue_url": "POSTROOM_WEBHOOK_QUEUE_URL",
        "webhook_dlq_url": "POSTROOM_WEBHOOK_DLQ_URL",
        "webhook_allow_private": "POSTROOM_WEBHOOK_ALLOW_PRIVATE",
        "webhook_timeout_seconds": "POSTROOM_WEBHOOK_TIMEOUT_SECONDS",
        "webhook_retry_schedule": "POSTROOM_WEBHOOK_RETRY_SCHEDULE",
        "webhook_disable_after_seconds": "POSTROOM_WEBHOOK_DISABLE_AFTER_SECONDS",
        "webhook_disable_min_failures": "POSTROOM_WEBHOOK_DISABLE_MIN_FAILURES",
        "public_url": "POSTROOM_PUBLIC_URL",
        "signing_secret_arn": "POSTROOM_SIGNING_SECRET_ARN",
        "signing_secret": "POSTROOM_SIGNING_SECRET",
    },
    "deliverability": {
        "dkim_selectors": "POSTROOM_DKIM_SELECTORS",
        "dkim_key_source": "POSTROOM_DKIM_KEY_SOURCE",
        "dkim_key_prefix": "POSTROOM_DKIM_KEY_PREFIX",
        "dkim_key_cache_seconds": "POSTROOM_DKIM_KEY_CACHE_SECONDS",
        "tls_policy": "POSTROOM_TLS_POLICY",
        "mta_sts": "POSTROOM_MTA_STS",
        "mta_sts_port": "POSTROOM_MTA_STS_PORT",
        "tls_ca_file": "POSTROOM_TLS_CA_FILE",
    },
    "reputation": {
        "enabled": "POSTROOM_REPUTATION_BREAKER",
        "bounce_rate": "POSTROOM_REPUTATION_BOUNCE_RATE",
        "complaint_rate": "POSTROOM_REPUTATION_COMPLAINT_RATE",
        "min_volume": "POSTROOM_REPUTATION_MIN_VOLUME",
        "window_seconds": "POSTROOM_REPUTATION_WINDOW_SECONDS",
        "hold_seconds": "POSTROOM_REPUTATION_HOLD_SECONDS",
    },
}


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """All of Postroom's settings, sub-models included, validated in one go: every function calls this once at cold
    start, so a malformed variable fails there whichever feature it belongs to."""
    env = os.environ if environ is None else environ

    # An empty variable means "use the default" (CloudFormation parameters cannot be unset, only empty).
    def present(variables: Mapping[str, str]) -> dict[str, object]:
        return {field: env[var] for field, var in variables.items() if env.get(var, "") != ""}

    values = present(_ENV) | {group: present(variables) for group, variables in _SUB_ENV.items()}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SettingsError(f"invalid Postroom settings: {problems}") from exc


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error's location (a sub-model's field is two levels down)."""
    if not loc:
        return "?"
    group = _SUB_ENV.get(str(loc[0]))
    if group is not None and len(loc) > 1:
        return group.get(str(loc[1]), str(loc[1]))
    return _ENV.get(str(loc[0]), str(loc[0]))
