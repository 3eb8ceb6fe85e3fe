"""checkov's CloudFormation checks on template.yaml: every check that fails is one accepted below, with the reason, so
a new finding fails the suite and a fixed one must leave the list (infrastructure/README.md, "checkov").

checkov runs from its own environment (.checkov-venv, made by .ci/run): it pins boto3==1.35.49, which would replace
the project's boto3 in .venv. The version is pinned there too, so the set of checks does not move under the list.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

CHECKOV = Path(__file__).resolve().parents[2] / ".checkov-venv" / "bin" / "checkov"

# check id -> why it stays failing. Resource-specific ones name their resources; the rest hold for every resource of
# the type.
ACCEPTED: dict[str, str] = {
    "CKV_AWS_115": "function-level concurrency limit: reserving takes from the account pool (new accounts have 10 in "
    "all); the worker, inbound and webhook sender have a parameter for it, the SQS consumers a MaximumConcurrency",
    "CKV_AWS_116": "Lambda DLQ: API functions are invoked synchronously and SQS consumers redrive to their queue's DLQ; "
    "the asynchronously invoked ones use an OnFailure destination (EventInvokeConfig), which checkov does not read",
    "CKV_AWS_117": "Lambda in a VPC: only direct SMTP needs one (EnableSmtpVpc); a VPC costs a NAT for every function",
    "CKV_AWS_173": "environment encryption with a CMK: the variables hold names and ARNs, no secret (secrets are read "
    "from Secrets Manager/SSM); Lambda encrypts them at rest with an AWS key anyway",
    "CKV_AWS_158": "log groups under a CMK: logs carry no message content or key; EncryptWithCustomerManagedKey "
    "covers the state (table, buckets, queues), and a key for logs needs a policy for logs.<region>",
    "CKV_AWS_27": "SQS encryption: the queues use SSE-SQS (SqsManagedSseEnabled); this check only accepts a KMS key",
    "CKV_AWS_18": "S3 access logging (BodiesBucket, InboundBucket): another bucket for logs of objects only "
    "Postroom's own roles touch; CloudTrail data events are the tool if an audit needs them",
    "CKV_AWS_21": "S3 versioning (BodiesBucket, InboundBucket): bodies expire by lifecycle and expunged mail must be "
    "gone; versions would keep deleted mail and bodies past their retention",
    "CKV_AWS_19": "BodiesBucket SSE: false positive - SSEAlgorithm is an Fn::If (AES256 or aws:kms), always set",
    "CKV_AWS_119": "IdempotencyTable under a CMK: expiring dedupe records; DynamoDB encrypts them with an AWS key",
    "CKV_AWS_149": "LinkSigningSecret under a CMK: Secrets Manager's AWS managed key; a CMK adds cost, not protection",
    "CKV_AWS_120": "API Gateway caching (Api, PublicApi): responses are per caller and per token; a cache would serve "
    "one caller's answer to another and costs per hour",
    "CKV_AWS_91": "NLB access logs (SubmissionLoadBalancer, optional): TCP pass-through, the task logs each session",
    "CKV_AWS_65": "Container Insights (SubmissionCluster, optional): per-metric cost; the alarm and dashboard use the "
    "load balancer's metrics",
}

# Accepted only for these resources: the same finding anywhere else is new.
ONLY_ON: dict[str, set[str]] = {
    "CKV_AWS_18": {"BodiesBucket", "InboundBucket"},
    "CKV_AWS_21": {"BodiesBucket", "InboundBucket"},
    "CKV_AWS_19": {"BodiesBucket"},
    "CKV_AWS_119": {"IdempotencyTable"},
    "CKV_AWS_149": {"LinkSigningSecret"},
    "CKV_AWS_120": {"Api", "PublicApi"},
    "CKV_AWS_91": {"SubmissionLoadBalancer"},
    "CKV_AWS_65": {"SubmissionCluster"},
}


def test_checkov_finds_only_the_accepted_failures(repo_root, template_path):
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} is absent: .ci/run creates it (python3 -m venv .checkov-venv && ... checkov)")
    # WHEN checkov checks the template (offline: --skip-download)
    result = subprocess.run(
        [str(CHECKOV), "-f", str(template_path), "--framework", "cloudformation", "--skip-download", "--quiet",
         "--compact", "--output", "json"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["summary"]["parsing_errors"] == 0
    failed: dict[str, set[str]] = {}
    for check in report["results"]["failed_checks"]:
        failed.setdefault(check["check_id"], set()).add(check["resource"])
    # THEN every failing check is accepted ...
    assert set(failed) - set(ACCEPTED) == set(), {c: failed[c] for c in set(failed) - set(ACCEPTED)}
    # ... and every accepted one still fails (a fixed finding leaves the list)
    assert set(ACCEPTED) - set(failed) == set()
    # ... and the resource-specific ones fail only on the resources their reason names
    for check, resources in ONLY_ON.items():
        assert {r.split(".")[-1] for r in failed[check]} == resources, check
    print(f"checkov {report['summary']}", flush=True)
