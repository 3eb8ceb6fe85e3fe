"""Runs AWS SAM's own translator on template.yaml and prints the resulting CloudFormation resources as JSON.

Executed with the interpreter of the separate SAM CLI environment (.sam-venv, see .ci/run), not imported by pytest:
aws-sam-cli pins its own boto3. cfn-lint and `sam validate --lint` check the template against schemas; only the
translator itself rejects some SAM properties (it refused MaximumBatchingWindowInMilliseconds on an SQS event), so
the suite runs it too. Local CodeUri/ContentUri paths are replaced by S3 URIs, as `sam package` would.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs only when a template names one; this one does not."""

    def load(self) -> dict[str, str]:
        return {}


def main(path: str) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path, encoding="utf-8") as handle:
        template: dict[str, Any] = yaml_parse(handle.read())
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = "s3://bucket/key"
    output = transform(template, {}, _NoManagedPolicies())
    json.dump(output, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
