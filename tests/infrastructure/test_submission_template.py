"""template.yaml's optional SMTP submission service (SubmissionService=Enabled): none of it in a default deployment,
all of it when enabled; listeners 587 and 465 onto the task's ports; a task role scoped to the one TLS secret;
security groups, task definition, service, alarm and dashboard - and the image that runs in it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from postroom.local import template as tpl
from postroom.protocols.submission import submission_service as svc

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:postroom/submission-tls-AbCdEf"
PARAMETER_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/postroom/submission-tls"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/postroom-submission:1"
ENABLED = {"SubmissionService": "Enabled", "SubmissionTlsSecretArn": SECRET_ARN, "SubmissionImageUri": IMAGE}
# Every resource the service adds; the VPC it runs in is shared with direct SMTP (EnableSmtpVpc).
SUBMISSION_TYPES = {
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::EIP",
    "AWS::EC2::SecurityGroup",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ECS::Cluster",
    "AWS::ECS::TaskDefinition",
    "AWS::ECS::Service",
    "AWS::Logs::LogGroup",
    "AWS::IAM::Role",
    "AWS::CloudWatch::Alarm",
}


def fake_resources(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Stand-in attributes for every resource, so values can be resolved without deploying."""
    return {
        lid: {
            "Ref": f"ref-{lid}",
            "Arn": f"arn:aws:test:::{lid}",
            "QueueName": f"queue-{lid}",
            "GroupId": f"sg-{lid}",
            "CidrBlock": "10.90.0.0/16",
            "AllocationId": f"eipalloc-{lid}",
            "DNSName": f"{lid}.elb.example",
            "LoadBalancerFullName": f"net/{lid}/1",
            "TargetGroupFullName": f"targetgroup/{lid}/1",
            "Name": f"name-{lid}",
        }
        for lid in template["Resources"]
    }


def resolve(template: dict[str, Any], value: Any, **parameters: str) -> Any:
    params = {"SendingDomains": "example.com", **parameters}
    return tpl.resolve(value, fake_resources(template), params, template=template)


def condition(template: dict[str, Any], name: str, **parameters: str) -> bool:
    return bool(resolve(template, {"Fn::If": [name, True, False]}, **parameters))


def created(template: dict[str, Any], **parameters: str) -> set[str]:
    return {
        lid
        for lid, r in template["Resources"].items()
        if "Condition" not in r or condition(template, r["Condition"], **parameters)
    }


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


# ---------------------------------------------------------------------------------------------------------------------
# Off by default, all there when enabled
# ---------------------------------------------------------------------------------------------------------------------


def test_a_default_deployment_creates_none_of_it(template):
    submission = {lid for lid in template["Resources"] if lid.startswith("Submission")}
    assert {template["Resources"][lid]["Type"] for lid in submission} == SUBMISSION_TYPES
    # GIVEN the defaults (SubmissionService=Disabled)  THEN none of the service's resources, and no VPC
    default = created(template)
    assert not submission & default
    assert not {lid for lid in default if template["Resources"][lid]["Type"].startswith("AWS::EC2::")}
    assert tpl.parameter_defaults(template)["SubmissionService"] == "Disabled"
    # ... its outputs are conditional, and the dashboard (always there) names none of it
    outputs = {name: o for name, o in template["Outputs"].items() if name.startswith("Submission")}
    assert set(outputs) == {"SubmissionHostName", "SubmissionClusterName", "SubmissionServiceName"}
    assert {o["Condition"] for o in outputs.values()} == {"UseSubmissionService"}
    body = resolve(template, props(template, "Dashboard")["DashboardBody"])
    assert "Submission" not in body
    assert "NetworkELB" not in body


def test_enabled_it_creates_everything_in_the_shared_vpc(template):
    default = created(template)
    enabled = created(template, **ENABLED)
    added = enabled - default
    # THEN the service's own resources and the VPC it runs in, nothing else
    assert {lid for lid in added if lid.startswith("Submission")} == {
        lid for lid in template["Resources"] if lid.startswith("Submission")
    }
    assert {lid for lid in added if not lid.startswith("Submission")} == {
        lid for lid, r in template["Resources"].items() if r.get("Condition") == "UseVpc"
    }
    assert {"SmtpVpc", "SmtpNatGateway", "SmtpPrivateSubnetA", "SmtpPrivateSubnetB"} <= added
    # ... but not direct SMTP's retained address or the worker's VPC attachment
    assert "SmtpNatEip" not in added
    assert "WorkerSecurityGroup" not in added
    worker = props(template, "WorkerFunction")
    assert resolve(template, worker["VpcConfig"], **ENABLED) is None
    nat = props(template, "SmtpNatGateway")["AllocationId"]
    assert resolve(template, nat, **ENABLED) == "eipalloc-SubmissionNatEip"
    assert template["Resources"]["SubmissionNatEip"]["DeletionPolicy"] == "Delete"
    # GIVEN direct SMTP too  THEN one NAT, leaving from SmtpNatEip (the SPF address), and no second address
    both = created(template, **ENABLED, EnableSmtpVpc="true")
    assert "SubmissionNatEip" not in both
    assert {"SmtpNatEip", "WorkerSecurityGroup", "SubmissionFargateService"} <= both
    assert resolve(template, nat, **ENABLED, EnableSmtpVpc="true") == "eipalloc-SmtpNatEip"


def test_enabling_it_without_an_image_or_a_certificate_is_refused(template):
    (rule,) = template["Rules"].values()

    def holds(assertion: dict[str, Any], **parameters: str) -> bool:
        return bool(resolve(template, assertion["Assert"], **parameters))

    assert resolve(template, rule["RuleCondition"]) is False  # the rule does not apply to a default deployment
    assert resolve(template, rule["RuleCondition"], **ENABLED) is True
    assert all(holds(a, **ENABLED) for a in rule["Assertions"])
    for missing in ("SubmissionImageUri", "SubmissionTlsSecretArn"):
        failing = [a for a in rule["Assertions"] if not holds(a, **{**ENABLED, missing: ""})]
        assert len(failing) == 1
        assert missing in failing[0]["AssertDescription"]


def test_the_parameters_take_secret_manager_and_ssm_arns_only(template):
    for arn in (SECRET_ARN, PARAMETER_ARN):
        assert tpl.effective_parameters(template, {"SendingDomains": "a.example", "SubmissionTlsSecretArn": arn})
    for bad in ("postroom/submission-tls", "arn:aws:s3:::bucket/cert.pem", "/postroom/submission-tls"):
        with pytest.raises(tpl.TemplateError, match="SubmissionTlsSecretArn"):
            tpl.effective_parameters(template, {"SendingDomains": "a.example", "SubmissionTlsSecretArn": bad})
    with pytest.raises(tpl.TemplateError, match="SubmissionService"):
        tpl.effective_parameters(template, {"SendingDomains": "a.example", "SubmissionService": "true"})
    with pytest.raises(tpl.TemplateError, match="SubmissionImageUri"):
        tpl.effective_parameters(template, {"SendingDomains": "a.example", "SubmissionImageUri": "my image"})
    assert tpl.parameter_defaults(template)["SubmissionDesiredCount"] == "1"


# ---------------------------------------------------------------------------------------------------------------------
# Load balancer, listeners, target groups, security groups
# ---------------------------------------------------------------------------------------------------------------------


def test_the_listeners_are_587_and_465_onto_the_tasks_listener_ports(template):
    balancer = props(template, "SubmissionLoadBalancer")
    assert (balancer["Type"], balancer["Scheme"]) == ("network", "internet-facing")
    # one public subnet per zone the tasks run in (a balancer routes only to targets in its own zones)
    assert resolve(template, balancer["Subnets"], **ENABLED) == ["ref-SmtpPublicSubnet", "ref-SubmissionPublicSubnetB"]
    zones = [
        resolve(template, props(template, s)["AvailabilityZone"])
        for s in ("SmtpPublicSubnet", "SubmissionPublicSubnetB", "SmtpPrivateSubnetA", "SmtpPrivateSubnetB")
    ]
    assert zones[:2] == zones[2:]
    assert zones[0] != zones[1]
    listeners = {
        props(template, lid)["Port"]: props(template, lid)
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"
    }
    assert set(listeners) == {587, 465}
    target_ports = {}
    for port, listener in listeners.items():
        assert listener["Protocol"] == "TCP"  # TLS ends in the task (STARTTLS cannot be offloaded)
        assert listener["LoadBalancerArn"] == {"Ref": "SubmissionLoadBalancer"}
        (action,) = listener["DefaultActions"]
        group = props(template, action["TargetGroupArn"]["Ref"])
        assert (group["TargetType"], group["Protocol"], group["HealthCheckProtocol"]) == ("ip", "TCP", "TCP")
        assert group["HealthCheckPort"] == "traffic-port"  # the listener port itself answers the health check
        attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
        # the failed-login lockout is per client address: the tasks must see the clients' own addresses
        assert attributes["preserve_client_ip.enabled"] == "true"
        target_ports[port] = group["Port"]
    assert target_ports == {587: svc.DEFAULT_STARTTLS_PORT, 465: svc.DEFAULT_TLS_PORT}
    # ... and the service registers the container's ports in exactly those groups
    service = props(template, "SubmissionFargateService")
    registered = {(lb["ContainerPort"], lb["TargetGroupArn"]["Ref"]) for lb in service["LoadBalancers"]}
    assert registered == {(2587, "SubmissionStartTlsTargetGroup"), (2465, "SubmissionTlsTargetGroup")}


def test_security_groups_let_587_and_465_in_and_only_https_out(template):
    balancer = props(template, "SubmissionLoadBalancerSecurityGroup")
    assert {(r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"]) for r in balancer["SecurityGroupIngress"]} == {
        ("tcp", 587, 587, "0.0.0.0/0"),
        ("tcp", 465, 465, "0.0.0.0/0"),
    }
    assert {(r["FromPort"], r["CidrIp"]["Fn::GetAtt"][0]) for r in balancer["SecurityGroupEgress"]} == {
        (2587, "SmtpVpc"),
        (2465, "SmtpVpc"),
    }
    task = props(template, "SubmissionTaskSecurityGroup")
    assert {
        (r["FromPort"], r["ToPort"], json.dumps(r["SourceSecurityGroupId"])) for r in task["SecurityGroupIngress"]
    } == {
        (2587, 2587, json.dumps({"Fn::GetAtt": ["SubmissionLoadBalancerSecurityGroup", "GroupId"]})),
        (2465, 2465, json.dumps({"Fn::GetAtt": ["SubmissionLoadBalancerSecurityGroup", "GroupId"]})),
    }
    assert all("CidrIp" not in r for r in task["SecurityGroupIngress"])
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in task["SecurityGroupEgress"]] == [("tcp", 443, 443)]
    assert props(template, "SubmissionLoadBalancer")["SecurityGroups"] == [
        {"Ref": "SubmissionLoadBalancerSecurityGroup"}
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Roles, task, service
# ---------------------------------------------------------------------------------------------------------------------


def statements_of(template: dict[str, Any], role: str, **parameters: str) -> list[dict[str, Any]]:
    policies = resolve(template, props(template, role)["Policies"], **{**ENABLED, **parameters})
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]


def test_the_task_role_may_read_the_tls_secret_and_nothing_else(template):
    # GIVEN a Secrets Manager secret  THEN one statement: GetSecretValue on that secret
    assert statements_of(template, "SubmissionTaskRole") == [
        {
            "Sid": "ReadTlsCertificate",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": SECRET_ARN,
        }
    ]
    # GIVEN an SSM SecureString parameter  THEN GetParameter on that parameter
    assert statements_of(template, "SubmissionTaskRole", SubmissionTlsSecretArn=PARAMETER_ARN) == [
        {"Sid": "ReadTlsCertificate", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": PARAMETER_ARN}
    ]
    # ... the service reads the same name the role allows: the task's environment carries the parameter itself
    (container,) = props(template, "SubmissionTaskDefinition")["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env[svc.ENV_TLS_SECRET] == {"Ref": "SubmissionTlsSecretArn"}
    assert svc.is_ssm_parameter(PARAMETER_ARN)
    assert not svc.is_ssm_parameter(SECRET_ARN)
    # ... and only ECS tasks of this account may assume it
    (trust,) = props(template, "SubmissionTaskRole")["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_the_execution_role_pulls_from_this_accounts_ecr_and_writes_its_own_log_group(template):
    by_sid = {s["Sid"]: s for s in statements_of(template, "SubmissionTaskExecutionRole")}
    assert set(by_sid) == {"EcrLogin", "PullImage", "WriteLogs"}
    assert by_sid["PullImage"]["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/*"
    assert by_sid["WriteLogs"]["Resource"] == "arn:aws:test:::SubmissionLogGroup"
    assert by_sid["EcrLogin"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}
    definition = props(template, "SubmissionTaskDefinition")
    assert definition["ExecutionRoleArn"] == {"Fn::GetAtt": ["SubmissionTaskExecutionRole", "Arn"]}
    assert definition["TaskRoleArn"] == {"Fn::GetAtt": ["SubmissionTaskRole", "Arn"]}


def test_the_task_runs_the_server_on_fargate_as_configured_by_its_environment(template):
    definition = props(template, "SubmissionTaskDefinition")
    assert (definition["RequiresCompatibilities"], definition["NetworkMode"]) == (["FARGATE"], "awsvpc")
    assert (definition["Cpu"], definition["Memory"]) == ("256", "512")
    assert definition["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (container,) = definition["ContainerDefinitions"]
    assert container["Image"] == {"Ref": "SubmissionImageUri"}
    assert container["ReadonlyRootFilesystem"] is True
    assert [m["ContainerPath"] for m in container["MountPoints"]] == ["/tmp"]  # where the key is loaded from
    assert {p["ContainerPort"] for p in container["PortMappings"]} == {2587, 2465}
    # GIVEN the environment the task gets  THEN the server accepts it as is, with the stack's API URL
    env = {e["Name"]: resolve(template, e["Value"], **ENABLED) for e in container["Environment"]}
    settings = svc.ServiceSettings.from_env(env)
    assert settings.api_url == resolve(template, template["Outputs"]["ApiUrl"]["Value"])
    assert (settings.tls_secret, settings.starttls_port, settings.tls_port) == (SECRET_ARN, 2587, 2465)
    # ... and its drain ends well before ECS's SIGKILL
    assert settings.drain_seconds + 5 <= container["StopTimeout"]
    # logs: the stack's retention, a group of its own
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == {"Ref": "SubmissionLogGroup"}
    assert props(template, "SubmissionLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_service_runs_in_the_private_subnets_without_public_addresses(template):
    service = props(template, "SubmissionFargateService")
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["Subnets"] == [{"Ref": "SmtpPrivateSubnetA"}, {"Ref": "SmtpPrivateSubnetB"}]
    assert network["SecurityGroups"] == [{"Ref": "SubmissionTaskSecurityGroup"}]
    assert (service["LaunchType"], service["DesiredCount"]) == ("FARGATE", {"Ref": "SubmissionDesiredCount"})
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    # the listeners exist before the service registers targets, and the NAT route before a task pulls its image
    depends = set(template["Resources"]["SubmissionFargateService"]["DependsOn"])
    assert {"SubmissionStartTlsListener", "SubmissionTlsListener", "SmtpPrivateDefaultRoute"} <= depends


# ---------------------------------------------------------------------------------------------------------------------
# Alarm and dashboard
# ---------------------------------------------------------------------------------------------------------------------


def test_the_alarm_watches_both_target_groups_for_unhealthy_or_missing_tasks(template):
    alarm = props(template, "SubmissionUnhealthyAlarm")
    assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {
        (s["Metric"]["MetricName"], s["Metric"]["Dimensions"][1]["Value"]["Fn::GetAtt"][0]) for s in stats.values()
    } == {
        ("UnHealthyHostCount", "SubmissionStartTlsTargetGroup"),
        ("UnHealthyHostCount", "SubmissionTlsTargetGroup"),
        ("HealthyHostCount", "SubmissionStartTlsTargetGroup"),
        ("HealthyHostCount", "SubmissionTlsTargetGroup"),
    }
    assert all(s["Metric"]["Namespace"] == "AWS/NetworkELB" for s in stats.values())
    (expression,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    text = resolve(template, expression["Expression"], **ENABLED, SubmissionDesiredCount="2")
    # every metric is used, and "too few healthy" compares with the desired count
    assert set(re.findall(r"\b[uh]\d{3}\b", text)) == set(stats)
    assert "< 2, 1, 0)" in text
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_enabled_the_dashboard_shows_the_service_and_its_alarm(template):
    body = json.loads(resolve(template, props(template, "Dashboard")["DashboardBody"], **ENABLED))
    widgets = body["widgets"]
    (alarms,) = [w for w in widgets if w["type"] == "alarm"]
    assert "arn:aws:test:::SubmissionUnhealthyAlarm" in alarms["properties"]["alarms"]
    (submission,) = [w for w in widgets if "submission" in w.get("properties", {}).get("title", "").lower()]
    text = json.dumps(submission)
    assert "targetgroup/SubmissionStartTlsTargetGroup/1" in text
    assert "targetgroup/SubmissionTlsTargetGroup/1" in text
    # ... still inside CloudWatch's 24-column grid, overlapping nothing
    cells: set[tuple[int, int]] = set()
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & area
        cells |= area


# ---------------------------------------------------------------------------------------------------------------------
# The image (no Docker engine here: it is checked as text)
# ---------------------------------------------------------------------------------------------------------------------


def test_the_image_runs_the_server_as_a_non_root_user_on_the_tasks_ports(repo_root: Path, template):
    dockerfile = (repo_root / "infrastructure" / "submission" / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith(("#", " "))]
    assert instructions[0] == "FROM python:3.12-slim"
    (user,) = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user.split(":")[0] not in ("root", "0")
    (expose,) = [line for line in instructions if line.startswith("EXPOSE ")]
    (container,) = props(template, "SubmissionTaskDefinition")["ContainerDefinitions"]
    assert {int(p) for p in expose.split()[1:]} == {p["ContainerPort"] for p in container["PortMappings"]}
    # exec form, so the server is PID 1 and gets ECS's SIGTERM; the command is the CLI's
    (entrypoint,) = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["postroom", "submission-server"]
    # the install includes the listeners' extra, which the package declares
    assert '".[submission]"' in dockerfile
    pyproject = (repo_root / "pyproject.toml").read_text()
    assert re.search(r'^submission = \["aiosmtpd', pyproject, re.MULTILINE)
    # the build context keeps only what the build copies
    ignore = (repo_root / "infrastructure" / "submission" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(ignore)
