"""The MediaConvert transcoder in a throwaway stack: the job template, the
service role and who may pass it, what it tells the ingest function, the
EventBridge rule, and the nag gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from cdk_app import compliance
from cdk_app.database import VideoTable
from cdk_app.mediaconvert import MediaConvertTranscoder
from cdk_app.storage import VideoStorage
from lambdas.mediaconvert.job import STATUS_UPDATE_INTERVAL, template_settings
from vod.settings import Env


class Synth:
    def __init__(self, outdir: Path) -> None:
        app = cdk.App(outdir=str(outdir))
        stack = cdk.Stack(app, "MediaConvertOnly")
        self.storage = VideoStorage(
            stack, "Storage", allowed_origins=["https://a.example"]
        )
        self.videos = VideoTable(stack, "Videos")
        self.transcoder = MediaConvertTranscoder(
            stack, "Transcoder", storage=self.storage, videos=self.videos
        )
        submitter = iam.Role(
            stack, "Submitter", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        self.transcoder.grant_submit(submitter)
        compliance.acknowledge_transcoder(
            self.transcoder, self.storage, submitter=submitter
        )
        self.ingest_environment = stack.resolve(self.transcoder.ingest_environment)
        compliance.enable_compliance_gate(app)
        self.template: dict[str, Any] = (
            app.synth().get_stack_by_name("MediaConvertOnly").template
        )
        self.outdir = outdir

    def resources(self, type_: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        return {
            logical: resource
            for logical, resource in self.template["Resources"].items()
            if resource["Type"] == type_ and logical.startswith(prefix)
        }

    def one(self, type_: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
        matches = self.resources(type_, prefix)
        assert len(matches) == 1, (type_, prefix, list(matches))
        return next(iter(matches.items()))

    def statements(self, policy_prefix: str) -> list[dict[str, Any]]:
        _, policy = self.one("AWS::IAM::Policy", policy_prefix)
        return list(policy["Properties"]["PolicyDocument"]["Statement"])

    def logical_id(self, construct: Any) -> str:
        return compliance._logical_id(construct)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return Synth(tmp_path_factory.mktemp("cdk-out-mediaconvert"))


def _by_action(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert action not in found, f"{action} granted twice"
            found[action] = statement
    return found


def test_the_nag_gate_passes_with_the_acknowledgements(synth):
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    assert [p["conclusion"] for p in report["pluginReports"]] == ["success"]


def test_the_job_template_carries_the_ladders_settings(synth):
    _, template = synth.one("AWS::MediaConvert::JobTemplate")
    props = template["Properties"]
    assert props["SettingsJson"] == template_settings()
    assert props["StatusUpdateInterval"] == STATUS_UPDATE_INTERVAL


def test_the_service_role_is_mediaconverts_and_reads_uploads_writes_outputs(synth):
    _, resource = synth.one("AWS::IAM::Role", "TranscoderServiceRole")
    (trust,) = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "mediaconvert.amazonaws.com"}
    assert "ManagedPolicyArns" not in resource["Properties"]
    grants = _by_action(synth.statements("TranscoderServiceRoleDefaultPolicy"))
    # ListBucket on uploads/ only, so that a missing original is a 404.
    assert set(grants) == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    source = synth.logical_id(synth.storage.source_bucket)
    assert grants["s3:ListBucket"]["Condition"] == {
        "StringLike": {"s3:prefix": ["uploads/*"]}
    }
    output = synth.logical_id(synth.storage.output_bucket)
    assert grants["s3:GetObject"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [source, "Arn"]}, "/uploads/*"]]
    }
    assert grants["s3:PutObject"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [output, "Arn"]}, "/videos/*"]]
    }


def test_a_submitter_may_create_jobs_and_pass_only_that_role(synth):
    role, _ = synth.one("AWS::IAM::Role", "TranscoderServiceRole")
    template, _ = synth.one("AWS::MediaConvert::JobTemplate")
    grants = _by_action(synth.statements("SubmitterDefaultPolicy"))
    assert set(grants) == {"mediaconvert:CreateJob", "iam:PassRole"}
    pass_role = grants["iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": [role, "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}
    }
    create = grants["mediaconvert:CreateJob"]["Resource"]
    assert {"Fn::GetAtt": [template, "Arn"]} in create
    arns = [json.dumps(r) for r in create if "Fn::Join" in r]
    assert len(arns) == 2
    assert any(a.endswith(':jobs/*"]]}') for a in arns)
    assert any(a.endswith(':queues/Default"]]}') for a in arns)


def test_the_ingest_function_is_told_to_use_mediaconvert(synth):
    role, _ = synth.one("AWS::IAM::Role", "TranscoderServiceRole")
    template, _ = synth.one("AWS::MediaConvert::JobTemplate")
    assert synth.ingest_environment == {
        Env.TRANSCODER: "mediaconvert",
        Env.MEDIACONVERT_ROLE_ARN: {"Fn::GetAtt": [role, "Arn"]},
        Env.MEDIACONVERT_JOB_TEMPLATE: {"Fn::GetAtt": [template, "Name"]},
        Env.OUTPUT_BUCKET: {"Ref": synth.logical_id(synth.storage.output_bucket)},
        # Its jobs spell out the audio's loudness target as the template does.
        Env.LOUDNESS_TARGET_LUFS: "-16",
        Env.LOUDNESS_TRUE_PEAK_DBTP: "-1",
    }


def test_the_template_normalizes_the_audio_to_the_knobs_target(synth):
    _, resource = synth.one("AWS::MediaConvert::JobTemplate")
    hls = resource["Properties"]["SettingsJson"]["OutputGroups"][0]
    (audio,) = [o for o in hls["Outputs"] if "AudioDescriptions" in o]
    normalization = audio["AudioDescriptions"][0]["AudioNormalizationSettings"]
    assert (normalization["TargetLkfs"], normalization["TruePeakLimiterThreshold"]) == (
        -16,
        -1,
    )


def test_the_transcoder_receives_no_upload_notification_itself(synth):
    assert not synth.resources("Custom::S3BucketNotifications")


def test_the_rule_sends_only_our_jobs_state_changes_to_the_status_function(synth):
    template, _ = synth.one("AWS::MediaConvert::JobTemplate")
    status, function = synth.one("AWS::Lambda::Function", "TranscoderStatusFunction")
    assert function["Properties"]["Handler"] == "lambdas.mediaconvert.status.handler"
    _, rule = synth.one("AWS::Events::Rule")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.mediaconvert"]
    assert pattern["detail-type"] == ["MediaConvert Job State Change"]
    assert pattern["detail"]["userMetadata"] == {
        "vodPipeline": [{"Fn::GetAtt": [template, "Name"]}]
    }
    assert set(pattern["detail"]["status"]) == {
        "PROGRESSING",
        "STATUS_UPDATE",
        "COMPLETE",
        "ERROR",
        "CANCELED",
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [status, "Arn"]}
    grants = _by_action(synth.statements("TranscoderStatusFunctionRoleDefaultPolicy"))
    assert set(grants) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:UpdateItem",
        "mediaconvert:GetJob",
    }
    assert json.dumps(grants["mediaconvert:GetJob"]["Resource"]).endswith(':jobs/*"]]}')
    env = function["Properties"]["Environment"]["Variables"]
    assert float(env[Env.MEDIACONVERT_BASIC_USD_PER_MINUTE]) == 0.0075
    assert float(env[Env.MEDIACONVERT_PRO_USD_PER_MINUTE]) == 0.012


def test_no_queue_or_fargate_workers_exist_in_this_mode(synth):
    types = {r["Type"] for r in synth.template["Resources"].values()}
    assert not {t for t in types if t.startswith(("AWS::SQS::", "AWS::ECS::"))}
    assert "AWS::EC2::VPC" not in types
