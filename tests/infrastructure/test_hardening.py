"""Template hardening (issue 15, item 13): access logs on both APIs, a failure destination for every asynchronously
invoked function, point-in-time recovery on every table, the SES events topic encrypted, reserved concurrency
available for the functions that take bursts."""

from __future__ import annotations

from typing import Any

# Event sources whose service invokes the function asynchronously (Lambda queues the event and retries on its own).
ASYNC_EVENT_TYPES = {"Schedule", "ScheduleV2", "CloudWatchEvent", "EventBridgeRule", "S3", "SNS", "IoTRule"}


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def asynchronously_invoked(template: dict[str, Any]) -> set[str]:
    functions = resources_of(template, "AWS::Serverless::Function")
    found = {
        lid
        for lid, f in functions.items()
        if any(e["Type"] in ASYNC_EVENT_TYPES for e in (f["Properties"].get("Events") or {}).values())
    }
    # SES receipt rules invoke with InvocationType Event
    for rule in resources_of(template, "AWS::SES::ReceiptRule").values():
        for action in rule["Properties"]["Rule"]["Actions"]:
            lambda_action = action.get("LambdaAction")
            if lambda_action and lambda_action.get("InvocationType") == "Event":
                found.add(lambda_action["FunctionArn"]["Fn::GetAtt"][0])
    return found


def test_every_asynchronously_invoked_function_keeps_its_failures_on_a_queue(template):
    # GIVEN the functions a service invokes asynchronously (SES receipt, EventBridge schedule)
    functions = asynchronously_invoked(template)
    assert functions >= {"InboundFunction", "SesQuotaFunction"}
    for logical_id in functions:
        config = template["Resources"][logical_id]["Properties"].get("EventInvokeConfig")
        # THEN each has an OnFailure destination, an SQS queue of this stack that keeps events for days
        assert config is not None, f"{logical_id} has no EventInvokeConfig"
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", logical_id
        queue = on_failure["Destination"]["Fn::GetAtt"][0]
        assert template["Resources"][queue]["Type"] == "AWS::SQS::Queue"
        assert template["Resources"][queue]["Properties"]["MessageRetentionPeriod"] >= 4 * 86400


def test_both_apis_write_access_logs_to_bounded_log_groups(template):
    for api in ("Api", "PublicApi"):
        resource = template["Resources"][api]
        setting = resource["Properties"]["AccessLogSetting"]
        group = template["Resources"][setting["DestinationArn"]["Fn::GetAtt"][0]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # one JSON object per request, without headers (the API key) or bodies
        assert setting["Format"].startswith("{")
        assert "$context.requestId" in setting["Format"]
        assert "header" not in setting["Format"].lower()
        # the account's CloudWatch role is set first when the stack creates it
        assert resource["DependsOn"] == "ApiGatewayLogsReady"
    ready = template["Resources"]["ApiGatewayLogsReady"]["Metadata"]["AccountSetting"]
    assert ready == {"Fn::If": ["CreateApiGatewayLogsRole", {"Ref": "ApiGatewayAccount"}, "existing"]}
    assert template["Parameters"]["ApiGatewayLogsRole"]["Default"] == "Create"
    assert template["Resources"]["ApiGatewayLogsRoleResource"]["DeletionPolicy"] == "Retain"


def test_every_table_has_point_in_time_recovery(template):
    tables = resources_of(template, "AWS::DynamoDB::Table")
    assert set(tables) >= {"Table", "IdempotencyTable"}
    for logical_id, table in tables.items():
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, (
            logical_id
        )


def test_the_ses_events_topic_is_encrypted_with_a_key_ses_may_use(template):
    topic = template["Resources"]["SesEventsTopic"]["Properties"]
    key = template["Resources"][topic["KmsMasterKeyId"]["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    assert "Condition" not in key  # the topic always exists, so must its key
    assert key["Properties"]["EnableKeyRotation"] is True
    (ses,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "ses.amazonaws.com"}
    ]
    assert set(ses["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert ses["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_inbound_and_webhook_sender_reserve_concurrency_only_on_request(template):
    for function, parameter, condition in (
        ("InboundFunction", "InboundReservedConcurrency", "HasInboundReservedConcurrency"),
        ("WebhookSenderFunction", "WebhookSenderReservedConcurrency", "HasWebhookSenderReservedConcurrency"),
    ):
        assert template["Parameters"][parameter]["Default"] == 0
        assert template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"] == {
            "Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
        }
        assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
