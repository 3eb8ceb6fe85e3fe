"""template.yaml's inbound side: SES stores the full MIME before anything else runs, may write only where the inbound
function reads, and the mailbox API's events are exactly the routes its resolver serves."""

from __future__ import annotations

import re
from typing import Any

from postroom.api.resolver import app
from postroom.local import template as tpl
from postroom.mailbox.content_keys import RAW_PREFIX


def test_receipt_rule_stores_in_s3_then_invokes_the_inbound_function(template: dict[str, Any]) -> None:
    rule = template["Resources"]["InboundReceiptRule"]
    assert rule["Condition"] == "HasInboundDomains"
    actions = rule["Properties"]["Rule"]["Actions"]
    # THEN the S3 action (full MIME up to 40 MB) comes first, the Lambda action second; no SNS action carries mail
    assert [next(iter(action)) for action in actions] == ["S3Action", "LambdaAction"]
    assert actions[0]["S3Action"] == {"BucketName": {"Ref": "InboundBucket"}, "ObjectKeyPrefix": RAW_PREFIX}
    assert actions[1]["LambdaAction"]["FunctionArn"] == {"Fn::GetAtt": ["InboundFunction", "Arn"]}
    assert actions[1]["LambdaAction"]["InvocationType"] == "Event"
    assert rule["Properties"]["Rule"]["Recipients"] == {"Fn::Split": [",", {"Ref": "InboundDomains"}]}
    assert rule["Properties"]["Rule"]["ScanEnabled"] is True  # spam and virus verdicts
    assert set(rule["DependsOn"]) == {"InboundBucketPolicy", "InboundFunctionSesPermission"}


def test_only_ses_of_this_account_may_write_received_mail(template: dict[str, Any]) -> None:
    statements = template["Resources"]["InboundBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Resource"] == {"Fn::Sub": "${InboundBucket.Arn}/inbound/*"}
    assert allow["Condition"]["StringEquals"] == {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}
    permission = template["Resources"]["InboundFunctionSesPermission"]["Properties"]
    assert (permission["Principal"], permission["SourceAccount"]) == ("ses.amazonaws.com", {"Ref": "AWS::AccountId"})


def test_failed_inbound_invocations_are_kept(template: dict[str, Any]) -> None:
    config = template["Resources"]["InboundFunction"]["Properties"]["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["InboundFailedQueue", "Arn"]},
    }


def test_no_inbound_domains_means_no_receipt_rule(template: dict[str, Any], resources: Any) -> None:
    # GIVEN the default (empty) InboundDomains  THEN the SES resources' condition is false
    condition = {"Fn::If": ["HasInboundDomains", True, False]}
    assert tpl.resolve(condition, resources, {"InboundDomains": ""}, template=template) is False
    assert tpl.resolve(condition, resources, {"InboundDomains": "shop.example"}, template=template) is True


def _normal(path: str) -> str:
    return re.sub(r"[{<][a-z_]+[}>]", "{}", path.rstrip("/")) or "/"


def test_mailbox_api_events_are_the_routes_the_resolver_serves(template: dict[str, Any]) -> None:
    declared = {
        (route.method, _normal(route.path))
        for route in tpl.api_routes(template)
        if route.function_logical_id == "MailboxApiFunction"
    }
    served = {
        (route.method, _normal(route.path))
        for route in app._static_routes + app._dynamic_routes  # the resolver's own route table
        if route.path.startswith(("/v1/mail", "/v1/addresses"))
    }
    assert declared == served
