"""The cdk-nag gate is live: a non-compliant construct fails synth."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from cdk_app.compliance import enable_compliance_gate


def test_nag_gate_fails_synth_of_a_non_compliant_construct(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "NonCompliant")
    s3.Bucket(stack, "OpenBucket")
    sqs.Queue(stack, "QueueWithoutDlq")
    enable_compliance_gate(app)
    with pytest.raises(RuntimeError, match="ValidationFailed") as raised:
        app.synth()
    for rule in ("AwsSolutions-S1", "AwsSolutions-S10", "AwsSolutions-SQS3"):
        assert rule in str(raised.value)


def test_the_platform_passes_the_gate(synth):
    report = (synth.outdir / "validation-report.json").read_text()
    assert '"failure"' not in report
