"""Shared fixtures: one moto server per session and table/bucket/queue makers
that use the model's schema constants (the local runner builds the same
resources from the synthesized template instead)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.motoserver import SETUP_CREDENTIALS, MotoEndpoint, moto_server
from vod.model import (
    OWNER_INDEX,
    OWNER_INDEX_PARTITION_KEY,
    OWNER_INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
)

#: The browser tests' fixtures (the built page, headless Chromium).
pytest_plugins = ["tests.browser_support"]

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoEndpoint]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> MotoEndpoint:
    """Point every boto3 client made in this test at the moto server."""
    for name, value in moto.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client(moto: MotoEndpoint, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.url,
        region_name=moto.region,
        aws_access_key_id=SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def create_video_table(dynamodb: Any, name: str) -> None:
    """The video table with the model's keys and owner index, for tests and
    benchmarks that need one without synthesizing."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": TABLE_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": OWNER_INDEX_PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": OWNER_INDEX_SORT_KEY, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": OWNER_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": OWNER_INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def make_table(moto: MotoEndpoint) -> str:
    name = unique("videos")
    create_video_table(client(moto, "dynamodb"), name)
    return name


def make_bucket(moto: MotoEndpoint, prefix: str = "bucket") -> str:
    name = unique(prefix)
    client(moto, "s3").create_bucket(Bucket=name)
    return name


def make_queue(moto: MotoEndpoint, *, max_receive_count: int = 3) -> tuple[str, str]:
    """A jobs queue with a DLQ; returns (queue_url, dlq_url)."""
    sqs = client(moto, "sqs")
    dlq_url = sqs.create_queue(QueueName=unique("jobs-dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=unique("jobs"),
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            )
        },
    )["QueueUrl"]
    return queue_url, dlq_url


# --- CDK: one synth per session -------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass
class Synthesized:
    app: Any
    platform: Any
    templates: dict[str, dict[str, Any]]
    outdir: Path

    def template(self, stack: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stack])

    def app_url(self, stack: str, path: str = "") -> dict[str, Any]:
        """The web app's https URL (plus ``path``) as the template writes it."""
        (distribution,) = (
            logical
            for logical in self.resources(stack, "AWS::CloudFront::Distribution")
            if logical.startswith("WebAppDistribution")
        )
        domain = {"Fn::GetAtt": [distribution, "DomainName"]}
        return {"Fn::Join": ["", ["https://", domain, *([path] if path else [])]]}

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == type_
        }


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def synthesize(outdir: Path, **overrides: Any) -> Synthesized:
    import aws_cdk as cdk

    from cdk_app.config import PlatformConfig
    from cdk_app.platform import build_platform

    context = {**cdk_json_context(), **overrides}
    app = cdk.App(context=context, outdir=str(outdir))
    platform = build_platform(app, PlatformConfig.from_context(app.node))
    assembly = app.synth()
    templates = {stack.stack_name: stack.template for stack in assembly.stacks}
    return Synthesized(app=app, platform=platform, templates=templates, outdir=outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app as `cdk synth` builds it from cdk.json, synthesized once."""
    return synthesize(tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def synth_mediaconvert(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk-out-mc"), transcoder="mediaconvert")


#: Knobs of the prod synth besides the stage: those a prod deployment sets,
#: and a redrive count other than the default, to show that what depends on
#: it follows the knob.
PROD_KNOBS: dict[str, Any] = {
    "allowedOrigins": ["https://app.example.com"],
    "authCallbackUrls": ["https://app.example.com/signed-in"],
    "authLogoutUrls": ["https://app.example.com/"],
    "authDomainPrefix": "vod-example",
    "domainName": "video.example.com",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/"
    "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "jobsMaxReceiveCount": 5,
    "autoCaptions": True,
}


@pytest.fixture(scope="session")
def synth_prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(
        tmp_path_factory.mktemp("cdk-out-prod"), stage="prod", **PROD_KNOBS
    )


def normalize_template(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes change with every code edit; snapshots track structure."""
    normalized: dict[str, Any] = json.loads(
        _ASSET_HASH.sub("<asset-hash>", json.dumps(template))
    )
    return normalized
