"""One Settings for the whole stack: the events and deliverability groups are its sub-models, read from the environment
and validated with the rest once at cold start, so a malformed variable of any feature fails every function's first
invocation with the variable's name, and no feature reads the environment on its own later."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from postroom.core.deliverability_settings import TlsLevel
from postroom.core.settings import SettingsError, settings_from_env
from postroom.wiring.event_services import event_services
from postroom.wiring.services import reset_services, services

BASE = {
    "POSTROOM_TABLE": "t",
    "POSTROOM_BUCKET": "b",
    "POSTROOM_QUEUE_URL": "q",
    "POSTROOM_DLQ_URL": "d",
    "POSTROOM_SENDING_DOMAINS": "shop.example",
}


def test_feature_settings_are_sub_models_of_the_one_settings() -> None:
    # GIVEN event and deliverability variables beside the core ones
    env = {
        **BASE,
        "POSTROOM_EVENT_RETENTION_DAYS": "7",
        "POSTROOM_WEBHOOK_RETRY_SCHEDULE": "5, 60",
        "POSTROOM_WEBHOOK_QUEUE_URL": "https://sqs.example/webhooks",
        "POSTROOM_TLS_POLICY": "bank.example=verify",
        "POSTROOM_MTA_STS_PORT": "8443",
        "POSTROOM_SIGNING_SECRET": "",  # empty means "the default", as for every other variable
    }
    # WHEN the settings are read once
    settings = settings_from_env(env)
    # THEN each group sits in its own sub-model
    assert settings.events.event_retention_days == 7
    assert settings.events.webhook_retry_schedule == (5, 60)
    assert settings.events.webhook_max_attempts == 3
    assert settings.events.webhook_queue_url == "https://sqs.example/webhooks"
    assert settings.events.signing_secret == ""
    assert settings.deliverability.tls_policy == {"bank.example": TlsLevel.VERIFY}
    assert settings.deliverability.mta_sts_port == 8443
    assert settings.deliverability.mta_sts is True


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("POSTROOM_WEBHOOK_RETRY_SCHEDULE", "5,soon", "POSTROOM_WEBHOOK_RETRY_SCHEDULE: .*comma list of seconds"),
        ("POSTROOM_WEBHOOK_RETRY_SCHEDULE", "5,50000", "POSTROOM_WEBHOOK_RETRY_SCHEDULE: .*0-43200"),
        ("POSTROOM_EVENT_RETENTION_DAYS", "0", "POSTROOM_EVENT_RETENTION_DAYS: "),
        ("POSTROOM_WEBHOOK_TIMEOUT_SECONDS", "fast", "POSTROOM_WEBHOOK_TIMEOUT_SECONDS: "),
        ("POSTROOM_MTA_STS_PORT", "0", "POSTROOM_MTA_STS_PORT: "),
        ("POSTROOM_DKIM_KEY_CACHE_SECONDS", "-1", "POSTROOM_DKIM_KEY_CACHE_SECONDS: "),
    ],
)
def test_a_malformed_feature_setting_fails_the_one_validation_by_its_variable(
    variable: str, value: str, message: str
) -> None:
    # Before the sub-models, a bad events variable passed settings_from_env and failed only the first request that
    # built the event services; now every function's cold start names it.
    with pytest.raises(SettingsError, match=message):
        settings_from_env({**BASE, variable: value})


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {**BASE, "POSTROOM_EVENT_RETENTION_DAYS": "9", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    reset_services()
    with mock_aws():
        yield
    reset_services()


@pytest.mark.usefixtures("environment")
def test_the_event_services_use_the_settings_the_core_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the core services, built from the environment at cold start
    core = services()
    # WHEN the environment changes afterwards (nothing re-reads it until the services are reset)
    monkeypatch.setenv("POSTROOM_EVENT_RETENTION_DAYS", "not a number")
    # THEN the event services hold the very settings object the core validated, not a second reading
    assert event_services().config is core.settings.events
    assert event_services().config.event_retention_days == 9
