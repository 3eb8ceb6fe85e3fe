"""template.yaml: it lints clean, it pins the delivery and least-privilege requirements, and the local stack derived
from it (postroom.local.template) creates the same tables, queues and buckets and wires the same functions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postroom.local import template as tpl

SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# SAM policy templates the functions may use: each is scoped to one named resource.
SCOPED_POLICY_TEMPLATES = {
    "DynamoDBCrudPolicy",
    "DynamoDBReadPolicy",
    "DynamoDBWritePolicy",
    "S3ReadPolicy",
    "S3WritePolicy",
    "S3CrudPolicy",
    "SQSSendMessagePolicy",
    "SQSPollerPolicy",
    "SNSPublishMessagePolicy",
}
# Actions IAM authorizes only against Resource "*" (they have no resource types); each must still be region-bound.
ACTIONS_WITHOUT_RESOURCE_TYPES = {
    "ses:GetAccount",
    "ecr:GetAuthorizationToken",
    "ses:DescribeActiveReceiptRuleSet",
    "ses:SetActiveReceiptRuleSet",
}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] == SERVERLESS_FUNCTION}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------------------------------------------------
# The template itself
# ---------------------------------------------------------------------------------------------------------------------


def cfn_lint_command() -> list[str]:
    script = Path(sys.executable).with_name("cfn-lint")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]


def test_cfn_lint_reports_nothing(repo_root, template_path):
    # GIVEN the template  WHEN cfn-lint checks it
    result = subprocess.run(
        [*cfn_lint_command(), "--", str(template_path)], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    # THEN no error and no warning
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_worker_reports_batch_item_failures(template):
    sources = tpl.sqs_event_sources(template)
    assert {s.function_logical_id for s in sources} >= {
        "WorkerFunction",
        "CommerceWorkerFunction",
        "EventsFunction",
        "WebhookSenderFunction",
    }
    assert all(source.report_batch_item_failures for source in sources)


def test_delivery_queue_redrives_to_the_dead_letter_queue(template):
    redrive = template["Resources"]["DeliveryQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "Arn"]}
    assert int(redrive["maxReceiveCount"]) > 1


def test_visibility_timeout_covers_six_worker_timeouts(template):
    for source in tpl.sqs_event_sources(template):
        queue = template["Resources"][source.queue_logical_id]["Properties"]
        worker = tpl.function_spec(template, source.function_logical_id)
        assert int(queue["VisibilityTimeout"]) >= 6 * worker.timeout


def test_every_function_has_a_log_group_with_bounded_retention(template):
    log_groups = {
        json.dumps(res["Properties"]["LogGroupName"]): res["Properties"]
        for res in template["Resources"].values()
        if res["Type"] == "AWS::Logs::LogGroup"
    }
    for logical_id in functions(template):
        group = log_groups.get(json.dumps({"Fn::Sub": f"/aws/lambda/${{{logical_id}}}"}))
        assert group is not None, f"{logical_id} has no log group"
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def branches(value: Any) -> list[Any]:
    """Both outcomes of an Fn::If (a conditional policy or statement), minus AWS::NoValue; else the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [b for branch in value["Fn::If"][1:] for b in branches(branch) if b != {"Ref": "AWS::NoValue"}]
    return [value]


def statements(policy: Any) -> list[dict[str, Any]]:
    if not isinstance(policy, dict):
        return []
    return [s for statement in as_list(policy.get("Statement", [])) for s in branches(statement)]


def test_no_policy_grants_wildcard_actions(template):
    # GIVEN every function policy and every resource policy in the template
    for logical_id, function in functions(template).items():
        for policy in (p for conditional in function["Properties"].get("Policies", []) for p in branches(conditional)):
            # THEN functions use no AWS managed policy by name (those are broad) ...
            assert isinstance(policy, dict), f"{logical_id}: managed policy {policy!r}"
            if "Statement" not in policy:
                # ... only SAM policy templates scoped to one resource ...
                assert set(policy) <= SCOPED_POLICY_TEMPLATES, f"{logical_id}: {policy}"
            for statement in statements(policy):
                # ... and inline statements that name their actions and their resources.
                actions = as_list(statement["Action"])
                assert all(a != "*" and not a.endswith(":*") for a in actions), f"{logical_id}: {actions}"
                if set(actions) <= ACTIONS_WITHOUT_RESOURCE_TYPES:
                    assert statement["Resource"] == "*"
                    assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": {"Ref": "AWS::Region"}}}
                    continue
                assert statement.get("Resource") not in (None, "*"), f"{logical_id}: {statement}"
    for logical_id, resource in template["Resources"].items():
        for statement in statements(resource.get("Properties", {}).get("PolicyDocument")):
            if statement["Effect"] == "Allow":
                assert all(a != "*" and not a.endswith(":*") for a in as_list(statement["Action"])), logical_id
    # ... and roles' inline policies (Scheduler's, the submission tasks') follow the functions' rules
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in statements(policy["PolicyDocument"]):
                actions = [a for action in as_list(statement["Action"]) for a in branches(action)]
                assert all(a != "*" and not a.endswith(":*") for a in actions), f"{logical_id}: {actions}"
                if set(actions) <= ACTIONS_WITHOUT_RESOURCE_TYPES:
                    assert statement["Resource"] == "*"
                    assert statement["Condition"] == {"StringEquals": {"aws:RequestedRegion": {"Ref": "AWS::Region"}}}
                    continue
                assert statement.get("Resource") not in (None, "*"), f"{logical_id}: {statement}"


def test_outputs_are_the_integration_contract(template):
    assert set(template["Outputs"]) >= {
        "ApiUrl",
        "TableName",
        "BodiesBucketName",
        "DeliveryQueueUrl",
        "DeadLetterQueueUrl",
        "SendApiFunctionName",
        "WorkerFunctionName",
    }
    assert template["Outputs"]["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
    }


def test_parameters_are_checked_like_cloudformation_checks_them(template, parameters):
    # GIVEN the template's parameters
    defaults = tpl.parameter_defaults(template)
    assert "SendingDomains" not in defaults  # required
    assert defaults["DefaultDelivery"] == "ses"
    assert defaults["SmtpPort"] == "25"
    # THEN good values pass and bad ones fail, naming the parameter
    assert tpl.effective_parameters(template, parameters)["SendingDomains"] == parameters["SendingDomains"]
    with pytest.raises(tpl.TemplateError, match="SendingDomains"):
        tpl.effective_parameters(template, {})
    with pytest.raises(tpl.TemplateError, match="SendingDomains"):
        tpl.effective_parameters(template, {"SendingDomains": "example.com=postfix"})
    with pytest.raises(tpl.TemplateError, match="DefaultDelivery"):
        tpl.effective_parameters(template, {**parameters, "DefaultDelivery": "pigeon"})
    with pytest.raises(tpl.TemplateError, match="SmtpPort"):
        tpl.effective_parameters(template, {**parameters, "SmtpPort": "70000"})
    with pytest.raises(tpl.TemplateError, match="NoSuchParameter"):
        tpl.effective_parameters(template, {**parameters, "NoSuchParameter": "x"})


def test_layer_requirements_mirror_the_package_dependencies(repo_root):
    # GIVEN the package's declared dependencies and the layer's requirements file
    declared = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (repo_root / "src" / "requirements.txt").read_text().splitlines()
    layer = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    # THEN they are the same list (boto3 included: the layer's botocore must not meet the runtime's older boto3)
    assert layer == set(declared)


# ---------------------------------------------------------------------------------------------------------------------
# Reading templates and resolving intrinsic functions
# ---------------------------------------------------------------------------------------------------------------------


def test_loader_turns_short_form_tags_into_long_forms(tmp_path):
    # GIVEN a template written with short-form tags
    path = tmp_path / "t.yaml"
    path.write_text(
        """
Resources:
  R:
    Properties:
      A: !Ref Thing
      B: !GetAtt Queue.Arn
      C: !GetAtt [Queue, QueueName]
      D: !Sub "${AWS::Region}-x"
      E: !Sub ["${a}", {a: !Ref Thing}]
      F: !If [Cond, !Join ["-", [a, b]], !Ref AWS::NoValue]
      G: !Select [0, !Split [",", "a,b"]]
      H: !Base64 hi
      I: !Equals [!Condition Other, x]
      Version: 2012-10-17
"""
    )
    # WHEN it is loaded
    props = tpl.load_template(path)["Resources"]["R"]["Properties"]
    # THEN it holds the long forms CloudFormation sees
    assert props == {
        "A": {"Ref": "Thing"},
        "B": {"Fn::GetAtt": ["Queue", "Arn"]},
        "C": {"Fn::GetAtt": ["Queue", "QueueName"]},
        "D": {"Fn::Sub": "${AWS::Region}-x"},
        "E": {"Fn::Sub": ["${a}", {"a": {"Ref": "Thing"}}]},
        "F": {"Fn::If": ["Cond", {"Fn::Join": ["-", ["a", "b"]]}, {"Ref": "AWS::NoValue"}]},
        "G": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        "H": {"Fn::Base64": "hi"},
        "I": {"Fn::Equals": [{"Condition": "Other"}, "x"]},
        "Version": "2012-10-17",
    }


def test_resolve_evaluates_conditions_like_cloudformation(template):
    # GIVEN the worker's SES statement, which names the configuration set only when one is configured
    policies = template["Resources"]["WorkerFunction"]["Properties"]["Policies"]
    (ses,) = [s for p in policies for s in statements(p) if "ses:SendEmail" in s["Action"]]
    resources: dict[str, Any] = {"SesEventsConfigurationSet": {"Ref": "postroom-created"}}
    # WHEN it is resolved without and with a configuration set
    without = tpl.resolve(ses["Resource"], resources, {"SesConfigurationSet": ""}, template=template)
    with_set = tpl.resolve(ses["Resource"], resources, {"SesConfigurationSet": "postroom"}, template=template)
    # THEN the If names the configuration set Postroom created, or the given one
    assert without == [
        "arn:aws:ses:us-east-1:123456789012:identity/*",
        "arn:aws:ses:us-east-1:123456789012:configuration-set/postroom-created",
    ]
    assert with_set == [
        "arn:aws:ses:us-east-1:123456789012:identity/*",
        "arn:aws:ses:us-east-1:123456789012:configuration-set/postroom",
    ]


def test_resolve_handles_sub_join_select_split():
    resources = {"Queue": {"Ref": "https://q", "Arn": "arn:q"}}
    value = {
        "sub": {"Fn::Sub": ["${Queue.Arn}/${x}/${!Literal}/${AWS::Partition}", {"x": {"Ref": "Queue"}}]},
        "join": {"Fn::Join": [",", ["a", {"Ref": "P"}]]},
        "select": {"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]},
    }
    assert tpl.resolve(value, resources, {"P": "p"}) == {
        "sub": "arn:q/https://q/${Literal}/aws",
        "join": "a,p",
        "select": "b",
    }


def test_unresolvable_values_name_the_place(template, resources):
    with pytest.raises(tpl.TemplateError, match=r"Outputs\.WorkerFunctionName.*AWS::Serverless::Function"):
        tpl.resolve(template["Outputs"]["WorkerFunctionName"]["Value"], resources, path="Outputs.WorkerFunctionName")
    with pytest.raises(tpl.TemplateError, match=r"\$\.Fn::GetAtt.*Table\.Nope"):
        tpl.resolve({"Fn::GetAtt": ["Table", "Nope"]}, resources)
    with pytest.raises(tpl.TemplateError, match="Fn::ImportValue is not supported"):
        tpl.resolve({"Fn::ImportValue": "x"}, resources)


def test_unemulated_resources_are_listed_honestly(template):
    listed = {r.logical_id: r for r in tpl.unemulated_resources(template)}
    assert {lid for lid, r in listed.items() if r.handled_by_harness} == {
        "PostroomLayer",
        "Api",
        "SendApiFunction",
        "WorkerFunction",
        "SendApiFunctionLogGroup",
        "WorkerFunctionLogGroup",
        "CommerceHooksFunction",
        "CommerceWorkerFunction",
        "CommerceHooksFunctionLogGroup",
        "CommerceWorkerFunctionLogGroup",
        "PublicApi",
        "EventsFunction",
        "WebhookSenderFunction",
        "TrackingFunction",
        "EventsFunctionLogGroup",
        "WebhookSenderFunctionLogGroup",
        "TrackingFunctionLogGroup",
        "SesQuotaFunction",
        "SesQuotaFunctionLogGroup",
        "InboundFunction",
        "InboundFunctionLogGroup",
        "MailboxApiFunction",
        "MailboxApiFunctionLogGroup",
        "ApiAccessLogGroup",
        "PublicApiAccessLogGroup",
        "InboundRuleSetActivatorLogGroup",
        # the optional submission service: locally, the stack's own submission listener stands in for it
        "SubmissionFargateService",
        "SubmissionLogGroup",
    }
    assert not listed["BodiesBucketPolicy"].handled_by_harness
    assert not {"Table", "DeliveryQueue", "DeliveryDeadLetterQueue", "BodiesBucket"} & set(listed)


# ---------------------------------------------------------------------------------------------------------------------
# Functions and event sources
# ---------------------------------------------------------------------------------------------------------------------


def test_api_routes_are_the_send_api_events(template):
    routes = tpl.api_routes(template)
    # Other functions add routes of their own; the send API's must be among them.
    assert {(r.function_logical_id, r.method, r.path) for r in routes} >= {
        ("SendApiFunction", "POST", "/v1/messages"),
        ("SendApiFunction", "GET", "/v1/messages/{id}"),
        ("SendApiFunction", "POST", "/v1/messages/batch"),
        ("SendApiFunction", "POST", "/v1/messages/{id}/cancel"),
        ("SendApiFunction", "PATCH", "/v1/messages/{id}"),
        ("SendApiFunction", "GET", "/v1/templates"),
        ("SendApiFunction", "GET", "/v1/templates/{name}"),
        ("SendApiFunction", "PUT", "/v1/templates/{name}"),
        ("SendApiFunction", "DELETE", "/v1/templates/{name}"),
        ("SendApiFunction", "POST", "/v1/templates/{name}/render"),
        ("CommerceHooksFunction", "POST", "/v1/hooks/shopify/{store}"),
        ("CommerceHooksFunction", "POST", "/v1/hooks/woocommerce/{store}"),
        ("SendApiFunction", "GET", "/v1/domains/{domain}/doctor"),
    }
    send_routes = [r for r in routes if r.function_logical_id == "SendApiFunction"]
    assert {(r.code_uri, r.handler) for r in send_routes} == {("functions/send_api/", "app.lambda_handler")}
    assert {(r.code_uri, r.handler) for r in routes} >= {
        ("functions/send_api/", "app.lambda_handler"),
        ("functions/commerce_hooks/", "app.lambda_handler"),
    }
    get = next(r for r in routes if r.method == "GET" and r.path == "/v1/messages/{id}")
    assert get.match("GET", "/v1/messages/msg_123") == {"id": "msg_123"}
    assert get.match("get", "/v1/messages/msg_123/") == {"id": "msg_123"}
    assert get.match("POST", "/v1/messages/msg_123") is None
    assert get.match("GET", "/v1/messages") is None
    assert get.match("GET", "/v1/messages/a/b") is None
    send = next(r for r in routes if r.method == "POST" and r.path == "/v1/messages")
    assert tpl.match_route(routes, "POST", "/v1/messages?x=1") == (send, {})
    assert tpl.match_route(routes, "DELETE", "/v1/messages") is None


def test_routes_prefer_literal_over_parameter_over_greedy():
    routes = [
        tpl.Route("Proxy", "ANY", "/{proxy+}", "p/", "app.h"),
        tpl.Route("ById", "GET", "/v1/messages/{id}", "p/", "app.h"),
        tpl.Route("Search", "GET", "/v1/messages/search", "p/", "app.h"),
    ]
    assert tpl.match_route(routes, "GET", "/v1/messages/search")[0].function_logical_id == "Search"
    assert tpl.match_route(routes, "GET", "/v1/messages/m1") == (routes[1], {"id": "m1"})
    assert tpl.match_route(routes, "PATCH", "/a/b/c") == (routes[0], {"proxy": "a/b/c"})


def test_sqs_event_source_is_the_worker(template):
    assert tpl.sqs_event_sources(template)[:1] == [
        tpl.SqsSource(
            function_logical_id="WorkerFunction",
            queue_logical_id="DeliveryQueue",
            batch_size=10,
            batching_window_ms=1000,
            report_batch_item_failures=True,
            code_uri="functions/worker/",
            handler="app.lambda_handler",
            maximum_concurrency=10,
        )
    ]


def test_function_spec_merges_globals(template):
    spec = tpl.function_spec(template, "WorkerFunction")
    assert (spec.runtime, spec.timeout, spec.memory_size) == ("python3.12", 120, 512)


# ---------------------------------------------------------------------------------------------------------------------
# Resources created from the template in moto
# ---------------------------------------------------------------------------------------------------------------------


def test_table_has_the_template_key_schema_and_index(template, resources, client):
    declared = template["Resources"]["Table"]["Properties"]
    table = client("dynamodb").describe_table(TableName=resources.ref("Table"))["Table"]
    assert table["TableName"] == "infra-test-Table"
    assert table["KeySchema"] == declared["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    gsi, feed = sorted(table["GlobalSecondaryIndexes"], key=lambda index: index["IndexName"] != "gsi1")
    assert (gsi["IndexName"], gsi["KeySchema"], gsi["Projection"]) == (
        "gsi1",
        declared["GlobalSecondaryIndexes"][0]["KeySchema"],
        {"ProjectionType": "ALL"},
    )
    # the events feed: only the event's JSON projected, so settling an event does not write the index again
    assert (feed["IndexName"], feed["KeySchema"], feed["Projection"]) == (
        "feed",
        declared["GlobalSecondaryIndexes"][1]["KeySchema"],
        {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["doc"]},
    )
    ttl = client("dynamodb").describe_time_to_live(TableName=resources.ref("Table"))["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    assert resources.get_att("Table", "Arn") == table["TableArn"]


def test_delivery_queue_redrive_points_at_the_created_dead_letter_queue(resources, client):
    sqs = client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=resources.ref("DeliveryQueue"), AttributeNames=["All"])["Attributes"]
    dlq_arn = resources.get_att("DeliveryDeadLetterQueue", "Arn")
    assert dlq_arn.endswith(":infra-test-DeliveryDeadLetterQueue")
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 40}
    assert (attributes["VisibilityTimeout"], attributes["MessageRetentionPeriod"]) == ("720", "1209600")
    assert resources["DeliveryQueue"]["QueueName"] == "infra-test-DeliveryQueue"


def test_bodies_bucket_exists_with_a_lowercase_name(resources, client):
    assert resources.ref("BodiesBucket") == "infra-test-bodiesbucket"
    client("s3").head_bucket(Bucket="infra-test-bodiesbucket")
    assert resources.get_att("BodiesBucket", "Arn") == "arn:aws:s3:::infra-test-bodiesbucket"
    assert "LifecycleConfiguration" in resources.ignored_properties["BodiesBucket"]


def test_function_environment_resolves_to_the_created_resources(template, resources, parameters):
    env = tpl.function_environment(template, "WorkerFunction", resources, parameters)
    # Other settings join the environment over time; these must resolve to the created resources and defaults.
    assert (
        env.items()
        >= {
            "POWERTOOLS_SERVICE_NAME": "postroom",
            "POWERTOOLS_METRICS_NAMESPACE": "Postroom",
            "POSTROOM_TABLE": "infra-test-Table",
            "POSTROOM_BUCKET": "infra-test-bodiesbucket",
            "POSTROOM_QUEUE_URL": resources.ref("DeliveryQueue"),
            "POSTROOM_DLQ_URL": resources.ref("DeliveryDeadLetterQueue"),
            "POSTROOM_SENDING_DOMAINS": "example.com,shop.example=smtp",
            "POSTROOM_DEFAULT_DELIVERY": "ses",
            "POSTROOM_DNS_NAMESERVERS": "",
            "POSTROOM_SMTP_PORT": "25",
            "POSTROOM_HELO_NAME": "",
            "POSTROOM_SES_CONFIGURATION_SET": "infra-test-SesEventsConfigurationSet",
            "POSTROOM_WEBHOOK_QUEUE_URL": resources.ref("WebhookQueue"),
            "POSTROOM_SIGNING_SECRET_ARN": resources.ref("LinkSigningSecret"),
            "POSTROOM_PUBLIC_URL": "https://infra-test-publicapi.execute-api.us-east-1.amazonaws.com/public",
            "POSTROOM_INBOUND_BUCKET": "infra-test-inboundbucket",
            "POSTROOM_INBOUND_DOMAINS": "",
            "POSTROOM_INBOUND_CATCH_ALL": "",
            "POSTROOM_SES_MAX_SEND_RATE": "0",
            "POSTROOM_DOMAIN_RATE_PER_SECOND": "10",
            "POSTROOM_SMTP_EGRESS_IPS": "",
            "POSTROOM_SCHEDULE_GROUP": "infra-test-ScheduleGroup",
            "POSTROOM_SCHEDULER_ROLE_ARN": "arn:aws:iam::123456789012:role/infra-test-SchedulerRole",
            "POSTROOM_COMMERCE_QUEUE_URL": resources.ref("CommerceQueue"),
            "POSTROOM_STORE_SECRET_PREFIX": "postroom/infra-test/stores/",
        }.items()
    )
    assert env["POSTROOM_QUEUE_URL"].endswith("/infra-test-DeliveryQueue")
    assert (
        tpl.function_environment(template, "SendApiFunction", resources, {"SmtpPort": "2525"})["POSTROOM_SMTP_PORT"]
        == "2525"
    )


def test_creating_again_reuses_what_exists(template, resources, aws_session, moto_endpoint, parameters):
    again = tpl.create_resources(
        template, aws_session, parameters=parameters, prefix="infra-test", endpoint_url=moto_endpoint
    )
    assert dict(again) == dict(resources)


def test_synthetic_template_covers_conditions_fifo_and_sns(tmp_path, client):
    # GIVEN a template with a conditional queue, a FIFO queue, a topic with an SQS and a Lambda subscription
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Parameters:
  WithAudit: {Type: String, Default: "no", AllowedValues: ["yes", "no"]}
Conditions:
  Audit: !Equals [!Ref WithAudit, "yes"]
Resources:
  Events: {Type: AWS::SNS::Topic}
  Inbox:
    Type: AWS::SQS::Queue
    Properties: {FifoQueue: true, ContentBasedDeduplication: true}
  AuditQueue: {Type: AWS::SQS::Queue, Condition: Audit}
  ToInbox:
    Type: AWS::SNS::Subscription
    Properties: {TopicArn: !Ref Events, Protocol: sqs, Endpoint: !GetAtt Plain.Arn, RawMessageDelivery: true}
  ToFunction:
    Type: AWS::SNS::Subscription
    Properties: {TopicArn: !Ref Events, Protocol: lambda, Endpoint: !GetAtt Fn.Arn}
  Plain: {Type: AWS::SQS::Queue}
  Fn: {Type: AWS::Serverless::Function, Properties: {CodeUri: f/, Handler: app.h, Runtime: python3.12}}
"""
    )
    template = tpl.load_template(path)
    # WHEN its resources are created through a plain client factory
    local = tpl.create_resources(template, client, prefix="synthetic")
    # THEN the condition, the FIFO suffix and the subscriptions behave as on AWS, and what is not emulated says so
    assert set(local) == {"Events", "Inbox", "ToInbox", "Plain"}
    assert local.skipped == {
        "AuditQueue": "Condition Audit is false",
        "ToFunction": "protocol 'lambda': only SNS -> SQS subscriptions are emulated",
    }
    assert local["Inbox"]["QueueName"] == "synthetic-Inbox.fifo"
    (subscription,) = client("sns").list_subscriptions_by_topic(TopicArn=local.ref("Events"))["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("sqs", local.get_att("Plain", "Arn"))
    assert [(r.logical_id, r.handled_by_harness) for r in tpl.unemulated_resources(template)] == [("Fn", True)]
    with_audit = tpl.create_resources(template, client, prefix="synthetic2", parameters={"WithAudit": "yes"})
    assert "AuditQueue" in with_audit


def test_no_intrinsic_function_is_folded_into_a_plain_string(template):
    # GIVEN every value of every resource (a stray "- !Ref X" line under a scalar folds into that scalar's text, which
    # YAML accepts and some linters miss)
    def strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for key, item in value.items():
                yield from strings(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from strings(item, f"{path}[{index}]")
        elif isinstance(value, str):
            yield path, value

    # THEN no plain string carries an intrinsic function's short form
    folded = [
        (path, text[:80])
        for path, text in strings(template["Resources"], "Resources")
        if re.search(r"!(Ref|Sub|GetAtt|If|Join|Select|Split)\b", text) and not path.endswith("DashboardBody")
    ]
    assert folded == []


def test_the_deployed_template_stays_inside_the_local_stacks_declared_subset(template: dict[str, Any]) -> None:
    # GIVEN template.yaml WHEN checked THEN every resource type and intrinsic it uses is declared
    tpl.check_supported(template)
    assert {r["Type"] for r in template["Resources"].values()} <= tpl.SUPPORTED_RESOURCE_TYPES


def test_a_resource_type_outside_the_declared_subset_is_refused_by_name(template: dict[str, Any]) -> None:
    # GIVEN the template plus a resource type the local stack does not declare
    extended = {**template, "Resources": {**template["Resources"], "Stream": {"Type": "AWS::Kinesis::Stream"}}}
    # WHEN the local stack reads it THEN it refuses, naming the resource and the type, before creating anything
    with pytest.raises(tpl.UnsupportedTemplateError, match=r"Resources\.Stream: resource type AWS::Kinesis::Stream"):
        tpl.check_supported(extended)
    with pytest.raises(tpl.UnsupportedTemplateError, match="AWS::Kinesis::Stream"):
        tpl.unemulated_resources(extended)
    with pytest.raises(tpl.UnsupportedTemplateError, match="AWS::Kinesis::Stream"):
        tpl.create_resources(extended, lambda service: pytest.fail(f"no {service} client should be made"))


def test_an_intrinsic_outside_the_declared_subset_is_refused_wherever_it_is(template: dict[str, Any]) -> None:
    # GIVEN an Fn::ImportValue in a property no emulator reads (a log group's name)
    resources = {
        **template["Resources"],
        "Extra": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::ImportValue": "shared-name"}}},
    }
    # WHEN checked THEN it is refused with its place, though nothing would have evaluated it
    with pytest.raises(tpl.UnsupportedTemplateError, match=r"Resources\.Extra\.Properties\.LogGroupName: .*Fn::Imp"):
        tpl.check_supported({**template, "Resources": resources})
    # a resource's Condition attribute and an IAM policy's Condition block are not intrinsic calls
    tpl.check_supported(
        {"Resources": {"P": {"Type": "AWS::IAM::Policy", "Properties": {"Condition": {"StringEquals": {"a": "b"}}}}}}
    )


MINI_SAM = {
    "Transform": "AWS::Serverless-2016-10-31",
    "Globals": {"Function": {"Runtime": "python3.12", "Timeout": 30, "Environment": {"Variables": {"SHARED": "g"}}}},
    "Resources": {
        "Jobs": {"Type": "AWS::SQS::Queue"},
        "Fn": {
            "Type": SERVERLESS_FUNCTION,
            "Properties": {
                "CodeUri": "functions/worker/",
                "Handler": "app.lambda_handler",
                "Environment": {"Variables": {"OWN": {"Ref": "Jobs"}}},
                "Events": {
                    "Off": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Jobs", "Arn"]}, "Enabled": False}},
                    "On": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Jobs", "Arn"]}, "BatchSize": 5}},
                },
            },
        },
    },
}


def test_functions_are_read_as_sams_translator_expands_them() -> None:
    # GIVEN a SAM function with Globals and two SQS events, one disabled
    # WHEN the local stack reads it THEN SAM's own expansion decides: Globals merged, SAM's defaults (MemorySize 128,
    # SQS MaximumBatchingWindowInSeconds absent -> 0), the disabled mapping dropped, the local CodeUri kept
    translated = tpl.translate(MINI_SAM)
    assert translated["Resources"]["FnOn"]["Type"] == "AWS::Lambda::EventSourceMapping"
    assert tpl.function_spec(MINI_SAM, "Fn") == tpl.FunctionSpec(
        "Fn", "functions/worker/", "app.lambda_handler", "python3.12", 30, 128
    )
    assert tpl.function_environment(MINI_SAM, "Fn", {"Jobs": {"Ref": "https://queue/jobs"}}) == {
        "SHARED": "g",
        "OWN": "https://queue/jobs",
    }
    (source,) = tpl.sqs_event_sources(MINI_SAM)
    assert (source.queue_logical_id, source.batch_size, source.batching_window_ms) == ("Jobs", 5, 0)
    assert "Transform" not in translated
    assert "Globals" not in translated
    # the caller's template is left as written
    assert MINI_SAM["Resources"]["Fn"]["Properties"]["CodeUri"] == "functions/worker/"


def test_a_template_sam_cannot_translate_is_refused_with_sams_reason() -> None:
    # GIVEN an SQS event that names no queue WHEN read THEN SAM's own error surfaces, naming the function
    broken = json.loads(json.dumps(MINI_SAM))
    broken["Resources"]["Fn"]["Properties"]["Events"] = {"Bad": {"Type": "SQS", "Properties": {"BatchSize": 5}}}
    with pytest.raises(tpl.TemplateError, match=r"SAM cannot translate the template: .*Fn"):
        tpl.function_spec(broken, "Fn")
