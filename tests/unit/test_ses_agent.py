"""SES errors map onto retry or bounce; success records SES's message id. botocore's Stubber checks every call
against the real sesv2 API model."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from postroom.core.delivery_results import Outcome
from postroom.deliver.ses_agent import SesDeliveryAgent


@pytest.fixture
def ses():
    client = boto3.client("sesv2", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def test_success_records_ses_message_id(ses) -> None:
    client, stubber = ses
    stubber.add_response(
        "send_email",
        {"MessageId": "0100-abc"},
        {
            "FromEmailAddress": "a@shop.example",
            "Destination": {"ToAddresses": ["b@example.org"]},
            "Content": {"Raw": {"Data": b"raw"}},
            "ConfigurationSetName": "events",
        },
    )
    results = SesDeliveryAgent(client, configuration_set="events").deliver("a@shop.example", ["b@example.org"], b"raw")
    # SES accepting a message is "sent"; delivery is what SES's Delivery event reports later
    assert results[0].outcome is Outcome.SENT
    assert results[0].ses_message_id == "0100-abc"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("TooManyRequestsException", Outcome.DEFERRED),
        ("SendingPausedException", Outcome.DEFERRED),
        ("MessageRejected", Outcome.BOUNCED),
        ("MailFromDomainNotVerifiedException", Outcome.BOUNCED),
    ],
)
def test_errors_map_to_retry_or_bounce(ses, code: str, outcome: Outcome) -> None:
    client, stubber = ses
    stubber.add_client_error("send_email", service_error_code=code, service_message="nope", http_status_code=400)
    results = SesDeliveryAgent(client).deliver("a@shop.example", ["b@example.org", "c@example.org"], b"raw")
    assert [r.outcome for r in results] == [outcome, outcome]
    assert code in results[0].reply
