"""template.yaml's operations side: alarms and their topic, the dashboard, the SES quota function, optional KMS and
SMTP VPC, concurrency, lifecycle - checked against the code that publishes the metrics, and through SAM's own
translator and `sam validate --lint` (from the separate SAM CLI environment that .ci/run creates)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from postroom.local import template as tpl
from postroom.observability.metrics import DIMENSION_DELIVERY_PATH, DIMENSION_DOMAIN_CLASS, Metric

SAM_VENV = Path(__file__).resolve().parents[2] / ".sam-venv"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:postroom/submission-tls-AbCdEf"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/postroom-submission:1"
ALARM = "AWS::CloudWatch::Alarm"


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def fake_resources(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Stand-in attributes for every resource, so the dashboard body can be resolved without deploying."""
    return {
        lid: {"Ref": f"ref-{lid}", "Arn": f"arn:aws:test:::{lid}", "QueueName": f"queue-{lid}"}
        for lid in template["Resources"]
    }


def resolve(template: dict[str, Any], value: Any, **parameters: str) -> Any:
    params = {"SendingDomains": "example.com", **parameters}
    return tpl.resolve(value, fake_resources(template), params, template=template)


def condition(template: dict[str, Any], name: str, **parameters: str) -> bool:
    return bool(resolve(template, {"Fn::If": [name, True, False]}, **parameters))


def postroom_metrics_in_alarms(template: dict[str, Any]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = set()
    for alarm in resources_of(template, ALARM).values():
        props = alarm["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        if "MetricName" in props:
            stats.append(props)
        for metric in stats:
            if metric["Namespace"] == "Postroom":
                dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
                found.add((metric["MetricName"], dims))
    return found


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = resolve(template, template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    return json.loads(body)


# ---------------------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_alarm_topic_and_is_named_after_the_stack(template):
    alarms = resources_of(template, ALARM)
    # the function errors take two alarms (10 metrics each at most); the submission service's exists only when enabled
    assert len(alarms) == 9
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), logical_id
        assert props["AlarmDescription"], logical_id


def test_the_alarms_an_operator_needs_exist_with_their_thresholds(template):
    alarms = {lid: a["Properties"] for lid, a in resources_of(template, ALARM).items()}
    # GIVEN the alarms  THEN each watches what the issue asks, at its threshold
    dlq = alarms["DeadLetterQueueAlarm"]
    assert (dlq["MetricName"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeliveryDeadLetterQueue", "QueueName"]}}
    ]
    oldest = alarms["OldestMessageAlarm"]
    assert (oldest["MetricName"], oldest["Threshold"]) == (
        "ApproximateAgeOfOldestMessage",
        {"Ref": "OldestMessageAlarmSeconds"},
    )
    assert (alarms["BounceRateAlarm"]["Threshold"], alarms["ComplaintRateAlarm"]["Threshold"]) == (5, 0.1)
    for rate, ses_metric in (
        ("BounceRateAlarm", "Reputation.BounceRate"),
        ("ComplaintRateAlarm", "Reputation.ComplaintRate"),
    ):
        metrics = alarms[rate]["Metrics"]
        assert [m["Id"] for m in metrics if m.get("ReturnData")] == ["rate"]
        assert any(m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == ses_metric for m in metrics)
    quota = alarms["SesQuotaAlarm"]
    assert (quota["Namespace"], quota["MetricName"], quota["Threshold"]) == (
        "Postroom",
        Metric.SEND_QUOTA_USED_PERCENT,
        80,
    )
    api = alarms["Api5xxAlarm"]
    assert (api["Namespace"], api["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert {d["Name"]: d["Value"] for d in api["Dimensions"]} == {"ApiName": {"Ref": "AWS::StackName"}, "Stage": "api"}
    assert template["Resources"]["Api"]["Properties"]["StageName"] == "api"
    assert "Name" not in template["Resources"]["Api"]["Properties"]  # SAM then names the API after the stack


def test_the_function_errors_alarm_covers_every_function(template):
    # GIVEN every function in the template (a new one must be added to the alarm)
    functions = set(resources_of(template, "AWS::Serverless::Function"))
    # (CloudWatch allows 10 metrics per alarm, so the functions are split over the *FunctionErrorsAlarm alarms)
    alarms = [r for name, r in template["Resources"].items() if name.endswith("FunctionErrorsAlarm")]
    watched: set[str] = set()
    for alarm in alarms:
        metrics = alarm["Properties"]["Metrics"]
        assert len(metrics) <= 10
        watched |= {
            m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
            for m in metrics
            if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "Errors"
        }
        (total,) = [m for m in metrics if m.get("ReturnData")]
        assert all(f"FILL({m['Id']}, 0)" in total["Expression"] for m in metrics if "MetricStat" in m)
    assert watched == functions


def test_alarms_and_dashboard_read_the_metrics_the_code_publishes(template):
    # GIVEN the namespace and service the functions publish under (Globals), and the metric names the code defines
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert (env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]) == ("Postroom", "postroom")
    published = {m.value for m in Metric}
    # THEN every Postroom metric an alarm reads exists in the code, with the service dimension only
    for name, dims in postroom_metrics_in_alarms(template):
        assert name in published
        assert dims == (("service", "postroom"),)
    # ... and so does every Postroom metric on the dashboard, plain or in a SEARCH over the breakdown dimensions
    body = json.dumps(dashboard(template))
    plain = set(re.findall(r'\["Postroom", "(\w+)", "service", "postroom"', body))
    searched = set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    assert plain
    assert searched
    assert plain | searched <= published
    assert f"{{Postroom,{DIMENSION_DELIVERY_PATH},{DIMENSION_DOMAIN_CLASS},service}}" in body
    # ... and the recipient outcomes are all on it
    assert {
        Metric.DELIVERED,
        Metric.DEFERRED,
        Metric.BOUNCED,
        Metric.FAILED,
        Metric.SUPPRESSED,
        Metric.COMPLAINED,
    } <= plain


def test_the_dashboard_is_json_with_every_alarm_and_the_stacks_resources(template):
    # WHEN the dashboard body is resolved as CloudFormation would  THEN it is valid JSON ...
    board = dashboard(template)
    widgets = board["widgets"]
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    # ... with an alarm status widget listing every alarm a default deployment creates
    assert set(alarm_widget["properties"]["alarms"]) == {
        f"arn:aws:test:::{lid}"
        for lid, alarm in resources_of(template, ALARM).items()
        if "Condition" not in alarm or condition(template, alarm["Condition"])
    }
    text = json.dumps(board)
    for reference in (
        "queue-DeliveryQueue",
        "queue-DeliveryDeadLetterQueue",
        "ref-WorkerFunction",
        "ref-SendApiFunction",
    ):
        assert reference in text
    (log_widget,) = [w for w in widgets if w["type"] == "log"]
    assert log_widget["properties"]["query"].startswith("SOURCE '/aws/lambda/ref-WorkerFunction'")
    # widgets stay inside CloudWatch's 24-column grid and do not overlap
    cells = set()
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & area, widget.get("properties", {}).get("title")
        cells |= area


def test_alarm_email_subscribes_only_when_given(template):
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert condition(template, "HasAlarmEmail") is False
    assert condition(template, "HasAlarmEmail", AlarmEmail="ops@example.com") is True
    with pytest.raises(tpl.TemplateError, match="AlarmEmail"):
        tpl.effective_parameters(template, {"SendingDomains": "example.com", "AlarmEmail": "not an address"})


# ---------------------------------------------------------------------------------------------------------------------
# The SES quota function, concurrency, lifecycle, parameters, outputs
# ---------------------------------------------------------------------------------------------------------------------


def test_the_quota_function_runs_every_five_minutes_with_get_account_only(template):
    function = template["Resources"]["SesQuotaFunction"]["Properties"]
    assert function["CodeUri"] == "functions/ses_quota/"
    (event,) = function["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "rate(5 minutes)")
    (policy,) = function["Policies"]
    (statement,) = policy["Statement"]
    assert statement["Action"] == ["ses:GetAccount"]


def test_worker_concurrency_is_capped_and_reserved_only_on_request(template):
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    (source,) = [s for s in tpl.sqs_event_sources(template) if s.function_logical_id == "WorkerFunction"]
    assert source.maximum_concurrency == 10
    assert resolve(template, worker["ReservedConcurrentExecutions"]) is None  # a new account's 10 stay unreserved
    assert resolve(template, worker["ReservedConcurrentExecutions"], WorkerReservedConcurrency="20") == "20"
    assert worker["Events"]["Delivery"]["Properties"]["MaximumBatchingWindowInSeconds"] == 1


def test_bodies_and_inbound_mail_expire_by_parameter(template):
    rules = {r["Id"]: r for r in template["Resources"]["BodiesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert (rules["ExpireMessageBodies"]["Prefix"], rules["ExpireMessageBodies"]["ExpirationInDays"]) == (
        "messages/",
        {"Ref": "BodyRetentionDays"},
    )
    assert (rules["ExpireInboundMail"]["Prefix"], rules["ExpireInboundMail"]["ExpirationInDays"]) == (
        "inbound/",
        {"Ref": "InboundRetentionDays"},
    )


def test_a_guided_deploy_asks_only_for_the_sending_domains(template):
    # GIVEN `sam deploy --guided`, which offers each parameter's default  THEN every parameter but SendingDomains has
    # one, and every parameter explains itself
    parameters = template["Parameters"]
    assert [name for name, spec in parameters.items() if "Default" not in spec] == ["SendingDomains"]
    assert all(len(spec.get("Description", "")) > 20 for spec in parameters.values())


def test_outputs_give_operators_the_dashboard_alarms_and_queues(template):
    outputs = template["Outputs"]
    assert {"DashboardUrl", "AlarmsUrl", "AlarmTopicArn", "DeadLetterQueueUrl", "SesQuotaFunctionName"} <= set(outputs)
    url = resolve(template, outputs["DashboardUrl"]["Value"])
    assert url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/ref-Dashboard"
    )
    assert outputs["SmtpEgressIp"]["Condition"] == "UseSmtpVpc"
    assert outputs["EncryptionKeyArn"]["Condition"] == "UseCustomerManagedKey"


# ---------------------------------------------------------------------------------------------------------------------
# Optional encryption key and SMTP networking
# ---------------------------------------------------------------------------------------------------------------------


def test_customer_managed_key_is_off_by_default_and_covers_the_state_when_on(template):
    res = template["Resources"]
    parts = {
        "table": res["Table"]["Properties"]["SSESpecification"],
        "bucket": res["BodiesBucket"]["Properties"]["BucketEncryption"],
        "queue": {k: res["DeliveryQueue"]["Properties"][k] for k in ("SqsManagedSseEnabled", "KmsMasterKeyId")},
        "dlq": {k: res["DeliveryDeadLetterQueue"]["Properties"][k] for k in ("SqsManagedSseEnabled", "KmsMasterKeyId")},
        "topic": {"KmsMasterKeyId": res["AlarmTopic"]["Properties"]["KmsMasterKeyId"]},
    }
    # GIVEN the default parameters  THEN AWS-owned/managed encryption, no key
    off = {name: resolve(template, value) for name, value in parts.items()}
    assert off["table"] == {"SSEEnabled": True}
    assert off["bucket"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert off["queue"] == off["dlq"] == {"SqsManagedSseEnabled": True}
    assert off["topic"] == {}
    # GIVEN EncryptWithCustomerManagedKey=true  THEN the stack's key everywhere
    on = {name: resolve(template, value, EncryptWithCustomerManagedKey="true") for name, value in parts.items()}
    assert on["table"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": "ref-EncryptionKey"}
    (rule,) = on["bucket"]["ServerSideEncryptionConfiguration"]
    assert rule == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "ref-EncryptionKey"},
        "BucketKeyEnabled": True,
    }
    assert on["queue"] == on["dlq"] == {"SqsManagedSseEnabled": False, "KmsMasterKeyId": "ref-EncryptionKey"}
    assert on["topic"] == {"KmsMasterKeyId": "ref-EncryptionKey"}
    key = res["EncryptionKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = [s["Principal"] for s in key["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals  # alarms publish to the encrypted topic
    roles = res["KmsUsePolicy"]["Properties"]["Roles"]
    assert roles == [{"Ref": "SendApiFunctionRole"}, {"Ref": "WorkerFunctionRole"}]
    for logical_id in ("EncryptionKey", "EncryptionKeyAlias", "KmsUsePolicy"):
        assert res[logical_id]["Condition"] == "UseCustomerManagedKey"


def test_the_smtp_vpc_exists_only_on_request_and_gives_one_egress_address(template):
    res = template["Resources"]
    networking = {lid for lid, r in res.items() if r["Type"].startswith("AWS::EC2::")}
    # GIVEN EnableSmtpVpc  THEN every network resource hangs on it or on the submission service (which shares the
    # VPC: UseVpc is either), and SES-only stacks get none
    vpc_conditions = {"UseVpc", "UseSmtpVpc", "UseSubmissionService", "SubmissionOnlyVpc"}
    assert {res[lid].get("Condition") for lid in networking} == vpc_conditions
    assert not any(condition(template, name) for name in vpc_conditions)
    smtp_only = {lid for lid in networking if res[lid]["Condition"] in ("UseVpc", "UseSmtpVpc")}
    assert all(condition(template, res[lid]["Condition"], EnableSmtpVpc="true") for lid in smtp_only)
    assert {lid for lid in networking if res[lid]["Condition"] == "UseSmtpVpc"} == {"SmtpNatEip", "WorkerSecurityGroup"}
    assert {r["Type"] for lid, r in res.items() if lid in networking} >= {
        "AWS::EC2::VPC",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::SecurityGroup",
    }
    assert condition(template, "UseSmtpVpc") is False
    worker = res["WorkerFunction"]["Properties"]
    assert resolve(template, worker["VpcConfig"]) is None
    assert resolve(template, worker["VpcConfig"], EnableSmtpVpc="true") == {
        "SecurityGroupIds": ["ref-WorkerSecurityGroup"],
        "SubnetIds": ["ref-SmtpPrivateSubnetA", "ref-SmtpPrivateSubnetB"],
    }
    # ... the worker can speak SMTP out and nothing can connect in
    egress = res["WorkerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    assert {(r["IpProtocol"], r["FromPort"]) for r in egress} == {("tcp", 25), ("tcp", 443), ("udp", 53), ("tcp", 53)}
    assert "SecurityGroupIngress" not in res["WorkerSecurityGroup"]["Properties"]
    # ... and the functions learn the Elastic IP, for the doctor's SPF check
    env = template["Globals"]["Function"]["Environment"]["Variables"]["POSTROOM_SMTP_EGRESS_IPS"]
    assert resolve(template, env) == ""
    assert resolve(template, env, EnableSmtpVpc="true") == "ref-SmtpNatEip"
    assert res["SmtpNatEip"]["DeletionPolicy"] == "Retain"  # SPF, PTR and the port-25 approval name this address


# ---------------------------------------------------------------------------------------------------------------------
# SAM's own tools
# ---------------------------------------------------------------------------------------------------------------------


def sam_tool(name: str) -> Path:
    tool = SAM_VENV / "bin" / name
    if not tool.exists():
        pytest.skip(f"{tool} is absent: .ci/run creates the SAM CLI environment (python3 -m venv .sam-venv && ...)")
    return tool


def sam_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}


def test_sam_validate_lint_is_clean(repo_root, template_path):
    result = subprocess.run(
        [str(sam_tool("sam")), "validate", "--lint", "--template", str(template_path), "--region", "us-east-1"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        env=sam_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sams_translator_accepts_the_template(repo_root, template_path, template):
    # WHEN SAM's translator turns the template into CloudFormation (what `sam deploy` does first)
    result = subprocess.run(
        [str(sam_tool("python")), str(Path(__file__).with_name("sam_translate.py")), str(template_path)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        env=sam_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resources = json.loads(result.stdout)["Resources"]
    # THEN the SQS event source keeps its settings ...
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "WorkerFunction"}
    ]
    assert mapping["MaximumBatchingWindowInSeconds"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    # ... the quota schedule becomes an EventBridge rule, and the doctor route is on the API
    assert any(r["Type"] == "AWS::Events::Rule" for r in resources.values())
    assert "SendApiFunctionDomainDoctorPermissionapi" in resources
    # ... and a default deployment (no VPC, no customer key, no alarm email, no submission service) creates this many
    deployed = [lid for lid, r in resources.items() if "Condition" not in r or condition(template, r["Condition"])]
    # (the optional API custom domain adds 2 resources; the Postmark routes' two events, 2 permissions; the Resend
    # routes' two and SendGrid's one, 3 permissions; each other route event one permission: domains and keys API 9,
    # stores API 3, OpenAPI document and Swagger UI 2, console and list API 5, console actions and pages 6,
    # explain/uploads/reputation 4, storing into a mailbox (APPEND) 1)
    assert len(template["Resources"]) == 112
    assert (len(resources), len(deployed)) == (214, 166)
    # ... the submission service's 17 resources come through as they are, condition included; enabling it creates
    # them and the 16 network resources it shares with direct SMTP (VPC, subnets, routes, NAT, endpoints)
    submission = {lid: r for lid, r in resources.items() if lid.startswith("Submission")}
    assert len(submission) == 17
    assert all(r == template["Resources"][lid] for lid, r in submission.items())
    enabled = {"SubmissionService": "Enabled", "SubmissionTlsSecretArn": SECRET_ARN, "SubmissionImageUri": IMAGE}
    on = [lid for lid, r in resources.items() if "Condition" not in r or condition(template, r["Condition"], **enabled)]
    assert len(on) == len(deployed) + 17 + 16


def test_the_samconfig_example_names_real_parameters_with_valid_values(repo_root, template):
    config = tomllib.loads((repo_root / "infrastructure" / "samconfig.example.toml").read_text())
    overrides = dict(
        item.split("=", 1) for item in shlex.split(config["default"]["deploy"]["parameters"]["parameter_overrides"])
    )
    # THEN CloudFormation would accept them: known names, allowed values
    effective = tpl.effective_parameters(template, overrides)
    assert effective["EnableSmtpVpc"] == "true"
    assert condition(template, "HasAlarmEmail", **overrides) is True
