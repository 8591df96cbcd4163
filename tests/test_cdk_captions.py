"""Caption tracks in the template: the captions function on the table's
stream with exactly the S3 keys it publishes, and, with ``autoCaptions``
(on in the prod synth), the Transcribe jobs it may start and the rule that
brings their state changes back."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Synthesized
from tests.test_cdk_upload_api import _actions

STACK = "Vod"
HANDLER = "lambdas.captions.app.handler"


def _function(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical, f["Properties"])
        for logical, f in synth.resources(STACK, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == HANDLER
    ]
    return found


def _statements(synth: Synthesized) -> list[dict[str, Any]]:
    _, function = _function(synth)
    role = function["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synth.resources(STACK, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _s3_grants(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Object key pattern -> the S3 actions granted on it."""
    grants: dict[str, set[str]] = {}
    for statement in statements:
        actions = _actions([statement])
        if not all(a.startswith("s3:") for a in actions):
            continue
        resource = statement["Resource"]
        pattern = resource["Fn::Join"][1][-1] if "Fn::Join" in resource else "bucket"
        grants.setdefault(pattern, set()).update(actions)
    return grants


def test_the_captions_function_publishes_only_caption_keys(synth):
    logical, function = _function(synth)
    assert function["Environment"]["Variables"]["VOD_AUTO_CAPTIONS"] == "false"
    assert function["Timeout"] == 300
    statements = _statements(synth)
    assert _s3_grants(statements) == {
        "/videos/*/captions/*": {"s3:GetObject", "s3:DeleteObject"},
        "/videos/*/subs/*": {"s3:PutObject", "s3:DeleteObject"},
        "/videos/*/master.m3u8": {"s3:GetObject", "s3:PutObject"},
        # A deleted video's keys are then 404, not 403.
        "bucket": {"s3:ListBucket"},
    }
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["videos/*"]}}
    table = [s for s in statements if "dynamodb:UpdateItem" in _actions([s])]
    assert _actions(table) == {"dynamodb:UpdateItem"}
    assert not any(a.startswith("transcribe:") for a in _actions(statements))
    (mapping,) = [
        m["Properties"]
        for m in synth.resources(STACK, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": logical}
    ]
    assert mapping["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
    assert mapping["EventSourceArn"]["Fn::GetAtt"][0].startswith("VideosTable")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in mapping["DestinationConfig"]
    rules = synth.resources(STACK, "AWS::Events::Rule").values()
    assert "aws.transcribe" not in json.dumps(list(rules))


def test_auto_captions_start_and_hear_back_from_our_transcribe_jobs(synth_prod):
    logical, function = _function(synth_prod)
    assert function["Environment"]["Variables"]["VOD_AUTO_CAPTIONS"] == "true"
    statements = _statements(synth_prod)
    (transcribe,) = [
        s for s in statements if any(a.startswith("transcribe:") for a in _actions([s]))
    ]
    assert _actions([transcribe]) == {
        "transcribe:StartTranscriptionJob",
        "transcribe:GetTranscriptionJob",
    }
    assert json.dumps(transcribe["Resource"]).endswith(
        ':transcription-job/vod-captions-*"]]}'
    )
    grants = _s3_grants(statements)
    # Transcribe reads the original and writes its result as the caller.
    assert grants["/uploads/*"] == {"s3:GetObject"}
    assert grants["/videos/*/captions/*"] == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    }
    (rule,) = [
        r["Properties"]
        for r in synth_prod.resources(STACK, "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == ["aws.transcribe"]
    ]
    assert rule["EventPattern"] == {
        "source": ["aws.transcribe"],
        "detail-type": ["Transcribe Job State Change"],
        "detail": {
            "TranscriptionJobName": [{"prefix": "vod-captions-"}],
            "TranscriptionJobStatus": ["COMPLETED", "FAILED"],
        },
    }
    assert [t["Arn"] for t in rule["Targets"]] == [{"Fn::GetAtt": [logical, "Arn"]}]
