"""Switching `transcoder` changes exactly the transcoding resources, and the
nag gate passes in both modes."""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest

from tests.conftest import cdk_json_context
from vod.settings import Env

STACK = "Vod"
FARGATE_ONLY = {
    "AWS::SQS::Queue": 2,
    "AWS::SQS::QueuePolicy": 2,
    "AWS::ECS::Cluster": 1,
    "AWS::ECS::ClusterCapacityProviderAssociations": 1,
    "AWS::ECS::Service": 1,
    "AWS::ECS::TaskDefinition": 1,
    "AWS::EC2::VPC": 1,
    "AWS::ApplicationAutoScaling::ScalableTarget": 1,
}
MEDIACONVERT_ONLY = {
    "AWS::MediaConvert::JobTemplate": 1,
    "AWS::Events::Rule": 1,
}


def _types(template: dict[str, Any]) -> collections.Counter[str]:
    return collections.Counter(r["Type"] for r in template["Resources"].values())


def _paths(template: dict[str, Any]) -> set[str]:
    return set(template["Resources"])


def test_fargate_mode_has_no_mediaconvert_resources(synth):
    types = _types(synth.templates[STACK])
    for type_ in MEDIACONVERT_ONLY:
        assert types[type_] == 0, type_
    for type_, count in FARGATE_ONLY.items():
        assert types[type_] >= count, type_


def test_mediaconvert_mode_has_no_queue_service_or_vpc(synth_mediaconvert):
    types = _types(synth_mediaconvert.templates[STACK])
    for type_ in FARGATE_ONLY:
        if type_.startswith("AWS::SQS::"):
            # The event publisher's on-failure queue exists in both modes.
            continue
        assert types[type_] == 0, type_
    assert not [
        logical
        for logical in _paths(synth_mediaconvert.templates[STACK])
        if logical.startswith("TranscoderJobs")
    ]
    for type_, count in MEDIACONVERT_ONLY.items():
        assert types[type_] == count, type_


def _ingest(resources: dict[str, Any]) -> str:
    (logical,) = [
        logical
        for logical, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and resource["Properties"].get("Handler") == "lambdas.ingest.app.handler"
    ]
    return logical


def test_the_switch_only_touches_the_transcoder_the_ingest_grants_and_monitoring(
    synth, synth_mediaconvert
):
    fargate = synth.templates[STACK]["Resources"]
    mediaconvert = synth_mediaconvert.templates[STACK]["Resources"]
    changed = {
        logical
        for logical in set(fargate) | set(mediaconvert)
        if json.dumps(fargate.get(logical), sort_keys=True)
        != json.dumps(mediaconvert.get(logical), sort_keys=True)
    }
    # The one ingest function belongs to the stack: it keeps its logical id,
    # so the S3 notification that targets it is untouched and the switch
    # updates its environment and its role's policy in place.
    ingest = _ingest(fargate)
    assert ingest == _ingest(mediaconvert)
    outside = {c for c in changed if not c.startswith(("Transcoder", "Monitoring"))}
    assert ingest in outside
    assert {c[:-8] for c in outside} == {  # logical ids end in a hash
        "IngestFunction",
        "IngestFunctionRoleDefaultPolicy",
    }
    monitoring = {c for c in changed if c.startswith("Monitoring")}
    assert {c[:-8] for c in monitoring} == {  # logical ids end in a hash
        "MonitoringDashboard",
        "MonitoringJobsDeadLettered",
        "MonitoringDeadJobsFunctionErrors",
        "MonitoringOldestJobAge",
        "MonitoringStatusFunctionErrors",
    }
    notifications = {
        k for k, v in fargate.items() if v["Type"] == "Custom::S3BucketNotifications"
    }
    assert notifications
    assert not notifications & changed


@pytest.mark.parametrize(
    ("fixture", "transcoder"),
    [("synth", "fargate"), ("synth_mediaconvert", "mediaconvert")],
)
def test_the_ingest_function_is_told_which_transcoder_and_only_its_settings(
    request, fixture, transcoder
):
    synthesized = request.getfixturevalue(fixture)
    resources = synthesized.templates[STACK]["Resources"]
    env = resources[_ingest(resources)]["Properties"]["Environment"]["Variables"]
    assert env[Env.TRANSCODER] == transcoder
    assert env[Env.TABLE_NAME] == {"Ref": "VideosTable41110721"}
    assert env[Env.MAX_UPLOAD_BYTES] == str(cdk_json_context()["maxUploadBytes"])
    assert (Env.JOBS_QUEUE_URL in env) == (transcoder == "fargate")
    assert (Env.MEDIACONVERT_JOB_TEMPLATE in env) == (transcoder == "mediaconvert")


def test_both_modes_and_prod_pass_the_nag_gate(synth, synth_mediaconvert, synth_prod):
    for result in (synth, synth_mediaconvert, synth_prod):
        report = (result.outdir / "validation-report.json").read_text()
        assert '"failure"' not in report


def test_mediaconvert_mode_outputs_its_template_instead_of_the_queue(
    synth, synth_mediaconvert
):
    assert "JobsQueueUrl" in synth.templates[STACK]["Outputs"]
    outputs = synth_mediaconvert.templates[STACK]["Outputs"]
    assert "MediaConvertJobTemplateName" in outputs
    assert "JobsQueueUrl" not in outputs
