"""InboundRuleSetActivation: the custom resource that makes the stack's SES receipt rule set the active one. Its
inline code (template.yaml, InboundRuleSetActivatorFunction) runs here as Lambda would run it, against moto's SES,
and answers CloudFormation on a loopback HTTP server standing in for the pre-signed response URL."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

OURS = "shop-inbound"
OTHER = "older-rules"


class _ResponseSink(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_PUT(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Sink", (_ResponseSink,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/response", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("ses")
        for name in (OURS, OTHER, "someone-elses"):
            client.create_receipt_rule_set(RuleSetName=name)
        yield client


@pytest.fixture
def activator(template: dict[str, Any], ses: Any, tmp_path: Path) -> ModuleType:
    """The function's inline code, loaded as Lambda loads index.py (after moto is on, as its client is module-level)."""
    source = template["Resources"]["InboundRuleSetActivatorFunction"]["Properties"]["Code"]["ZipFile"]
    path = tmp_path / "index.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("index", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def active(ses: Any) -> str:
    return ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name", "")


def invoke(
    activator: ModuleType,
    response: tuple[str, list[dict[str, Any]]],
    request: str,
    mode: str = "IfNoneActive",
    physical_id: str | None = None,
    rule_set: str = OURS,
) -> dict[str, Any]:
    url, bodies = response
    event = {
        "RequestType": request,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/shop/1",
        "RequestId": f"req-{len(bodies)}",
        "LogicalResourceId": "InboundRuleSetActivation",
        "ResourceType": "Custom::SesActiveReceiptRuleSet",
        "ResourceProperties": {"ServiceToken": "arn", "RuleSetName": rule_set, "Mode": mode},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    activator.handler(event, None)
    assert len(bodies) == int(event["RequestId"].removeprefix("req-")) + 1, "CloudFormation got no answer"
    answer = bodies[-1]
    assert (answer["RequestId"], answer["LogicalResourceId"]) == (event["RequestId"], "InboundRuleSetActivation")
    return answer


def test_the_template_activates_only_with_inbound_domains_and_not_when_told_never(template):
    resource = template["Resources"]["InboundRuleSetActivation"]
    assert resource["Condition"] == "ActivateInboundRuleSetOnDeploy"
    assert template["Parameters"]["ActivateInboundRuleSet"]["Default"] == "IfNoneActive"
    assert template["Conditions"]["ActivateInboundRuleSetOnDeploy"] == {
        "Fn::And": [
            {"Condition": "HasInboundDomains"},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "ActivateInboundRuleSet"}, "Never"]}]},
        ]
    }
    # the rule must exist before mail flows to the set
    assert "InboundReceiptRule" in resource["DependsOn"]
    assert resource["Properties"]["RuleSetName"] == {"Ref": "InboundReceiptRuleSet"}


def test_with_no_active_set_it_activates_ours_and_deactivates_it_on_delete(activator, ses, response_url):
    # GIVEN a region with no active rule set  WHEN the stack creates the resource
    created = invoke(activator, response_url, "Create")
    # THEN our set is active
    assert created["Status"] == "SUCCESS"
    assert active(ses) == OURS
    # WHEN the stack is deleted  THEN no set is active again (and SES lets the stack delete its set)
    deleted = invoke(activator, response_url, "Delete", physical_id=created["PhysicalResourceId"])
    assert deleted["Status"] == "SUCCESS"
    assert active(ses) == ""


def test_if_none_active_never_takes_over_another_active_set(activator, ses, response_url):
    # GIVEN the account already receives mail through another set
    ses.set_active_receipt_rule_set(RuleSetName=OTHER)
    created = invoke(activator, response_url, "Create")
    # THEN it stays active, and deleting the stack leaves it so
    assert (created["Status"], active(ses)) == ("SUCCESS", OTHER)
    invoke(activator, response_url, "Delete", physical_id=created["PhysicalResourceId"])
    assert active(ses) == OTHER


def test_always_takes_over_and_gives_the_earlier_set_back(activator, ses, response_url):
    ses.set_active_receipt_rule_set(RuleSetName=OTHER)
    created = invoke(activator, response_url, "Create", mode="Always")
    assert (created["Status"], active(ses)) == ("SUCCESS", OURS)
    # a stack update (same settings, or switching to IfNoneActive) keeps what was taken, to give back later
    updated = invoke(activator, response_url, "Update", mode="IfNoneActive", physical_id=created["PhysicalResourceId"])
    assert (updated["PhysicalResourceId"], active(ses)) == (created["PhysicalResourceId"], OURS)
    invoke(activator, response_url, "Delete", physical_id=updated["PhysicalResourceId"])
    assert active(ses) == OTHER


def test_update_to_always_takes_over_what_create_left_alone(activator, ses, response_url):
    ses.set_active_receipt_rule_set(RuleSetName=OTHER)
    created = invoke(activator, response_url, "Create")
    assert active(ses) == OTHER
    # WHEN the operator switches to Always  THEN ours becomes active under a new physical id ...
    updated = invoke(activator, response_url, "Update", mode="Always", physical_id=created["PhysicalResourceId"])
    assert (updated["Status"], active(ses)) == ("SUCCESS", OURS)
    assert updated["PhysicalResourceId"] != created["PhysicalResourceId"]
    # ... and CloudFormation's delete of the old id (cleanup after a replacement) changes nothing
    invoke(activator, response_url, "Delete", physical_id=created["PhysicalResourceId"])
    assert active(ses) == OURS


def test_delete_leaves_a_set_someone_activated_since(activator, ses, response_url):
    created = invoke(activator, response_url, "Create", mode="Always")
    ses.set_active_receipt_rule_set(RuleSetName="someone-elses")
    invoke(activator, response_url, "Delete", physical_id=created["PhysicalResourceId"])
    assert active(ses) == "someone-elses"


def test_delete_falls_back_to_none_when_the_earlier_set_is_gone(activator, ses, response_url):
    ses.set_active_receipt_rule_set(RuleSetName=OTHER)
    created = invoke(activator, response_url, "Create", mode="Always")
    ses.delete_receipt_rule_set(RuleSetName=OTHER)
    deleted = invoke(activator, response_url, "Delete", physical_id=created["PhysicalResourceId"])
    assert (deleted["Status"], active(ses)) == ("SUCCESS", "")


def test_a_failure_is_answered_with_its_reason_instead_of_leaving_cloudformation_waiting(activator, ses, response_url):
    # GIVEN a rule set that does not exist  WHEN asked to activate it
    answer = invoke(activator, response_url, "Create", mode="Always", rule_set="no-such-set")
    # THEN CloudFormation hears FAILED with SES's reason, and a rollback's delete of that id does nothing
    assert answer["Status"] == "FAILED"
    assert "RuleSetDoesNotExist" in answer["Reason"]
    invoke(activator, response_url, "Delete", physical_id=answer["PhysicalResourceId"])
    assert active(ses) == ""
