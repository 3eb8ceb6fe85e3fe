"""Fixtures for the template tests: the parsed template.yaml, and a moto server (the same emulator the local stack
uses) holding the resources created from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from postroom.local import template as tpl

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
PARAMETERS = {"SendingDomains": "example.com,shop.example=smtp"}
REGION = "us-east-1"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def template_path() -> Path:
    return TEMPLATE_PATH


@pytest.fixture(scope="session")
def parameters() -> dict[str, str]:
    """Deploy-time parameter overrides: only the required SendingDomains."""
    return dict(PARAMETERS)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return tpl.load_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port; the environment cannot point its clients anywhere else."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in (
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL_SNS",
        ):
            monkeypatch.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def aws_session(moto_endpoint: str) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture(scope="module")
def client(aws_session: boto3.session.Session, moto_endpoint: str) -> Any:
    """``client("sqs")``: a boto3 client talking to the module's moto server."""
    return lambda service: aws_session.client(service, endpoint_url=moto_endpoint)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any], aws_session: boto3.session.Session, moto_endpoint: str) -> tpl.LocalResources:
    return tpl.create_resources(
        template, aws_session, parameters=PARAMETERS, prefix="infra-test", endpoint_url=moto_endpoint
    )
