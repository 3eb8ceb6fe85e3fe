"""The scheduled SES quota publisher: GetAccount (a botocore Stubber - moto does not implement it) becomes the
SendQuotaUsedPercent metric the quota alarm reads, through the real handler in functions/ses_quota."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from postroom.core import aws
from postroom.local.handlers import LocalFunction
from postroom.observability.metrics import Metric
from tests.conftest import ROOT


def value(document: dict[str, Any], metric: Metric) -> float:
    """EMF allows a value or a list of values; Powertools writes lists."""
    (single,) = document[metric] if isinstance(document[metric], list) else [document[metric]]
    return single


def account(sent: float, quota: float, *, production: bool = True) -> dict[str, Any]:
    return {
        "SendQuota": {"Max24HourSend": quota, "MaxSendRate": 14.0, "SentLast24Hours": sent},
        "SendingEnabled": True,
        "ProductionAccessEnabled": production,
        "EnforcementStatus": "HEALTHY",
        "DedicatedIpAutoWarmupEnabled": False,
    }


@pytest.fixture
def quota_function(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], tuple[Any, Stubber]]:
    """Run the real handler with an SES client whose GetAccount answer the test chooses."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "postroom")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Postroom")
    ses = boto3.client("sesv2", region_name="us-east-1")
    monkeypatch.setattr(aws, "client", lambda service: ses if service == "sesv2" else pytest.fail(service))
    function = LocalFunction("SesQuotaFunction", ROOT / "functions/ses_quota/app.py", "lambda_handler", 30, 128)

    def run(answer: dict[str, Any]) -> tuple[Any, Stubber]:
        stub = Stubber(ses)
        if "error" in answer:
            stub.add_client_error("get_account", answer["error"], http_status_code=403)
        else:
            stub.add_response("get_account", answer)
        with stub:
            return function.invoke({"source": "aws.events", "detail-type": "Scheduled Event"}), stub

    return run


def test_quota_use_is_published_as_a_percentage(quota_function, emf) -> None:
    # GIVEN an account that sent 42,000 of its 50,000 daily messages
    # WHEN the scheduled function runs
    summary, stub = quota_function(account(42_000, 50_000))
    stub.assert_no_pending_responses()
    # THEN it publishes 84 % used (over the alarm's 80 %) with the raw figures, under the service dimension
    (document,) = emf()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Postroom"
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == "postroom"
    assert value(document, Metric.SEND_QUOTA_USED_PERCENT) == 84.0
    assert value(document, Metric.SES_MAX_SEND_RATE) == 14.0
    assert value(document, Metric.SES_SENT_LAST_24_HOURS) == 42_000
    assert value(document, Metric.SES_SENDING_ENABLED) == 1
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units[Metric.SEND_QUOTA_USED_PERCENT] == "Percent"
    assert summary["used_percent"] == 84.0


def test_an_account_without_daily_quota_uses_zero_percent(quota_function, emf) -> None:
    summary, _ = quota_function(account(1_000_000, -1))
    assert summary["used_percent"] == 0.0
    assert value(emf()[0], Metric.SEND_QUOTA_USED_PERCENT) == 0.0


def test_a_refused_get_account_fails_the_invocation(quota_function, emf) -> None:
    # GIVEN a role without ses:GetAccount  WHEN the function runs  THEN it fails (the errors alarm sees it) ...
    with pytest.raises(ClientError, match="AccessDenied"):
        quota_function({"error": "AccessDeniedException"})
    # ... and publishes no made-up figure
    assert emf() == []
