"""Switching `transcoder` changes exactly the transcoding resources, and the
nag gate passes in both modes."""

from __future__ import annotations

import collections
import json
from typing import Any

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


def test_the_switch_only_touches_the_transcoder_and_its_monitoring(
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
    assert {
        c for c in changed if not c.startswith(("Transcoder", "Monitoring"))
    } == set()
    monitoring = {c for c in changed if c.startswith("Monitoring")}
    assert {c[:-8] for c in monitoring} == {  # logical ids end in a hash
        "MonitoringDashboard",
        "MonitoringDeadLetterQueueNotEmpty",
        "MonitoringOldestJobAge",
        "MonitoringStatusFunctionErrors",
    }
    # The ingest function keeps its logical id, so the S3 notification that
    # targets it is untouched and the switch updates it in place.
    ingest = {
        logical
        for logical, resource in fargate.items()
        if resource["Type"] == "AWS::Lambda::Function"
        and logical.startswith("TranscoderIngestFunction")
    }
    assert len(ingest) == 1
    assert ingest <= set(mediaconvert)
    notifications = {
        k for k, v in fargate.items() if v["Type"] == "Custom::S3BucketNotifications"
    }
    assert notifications
    assert not notifications & changed


def test_both_modes_pass_the_nag_gate(synth, synth_mediaconvert):
    for result in (synth, synth_mediaconvert):
        report = (result.outdir / "validation-report.json").read_text()
        assert '"failure"' not in report


def test_mediaconvert_mode_outputs_its_template_instead_of_the_queue(
    synth, synth_mediaconvert
):
    assert "JobsQueueUrl" in synth.templates[STACK]["Outputs"]
    outputs = synth_mediaconvert.templates[STACK]["Outputs"]
    assert "MediaConvertJobTemplateName" in outputs
    assert "JobsQueueUrl" not in outputs
