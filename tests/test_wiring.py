"""A wiring mistake in the synthesized template fails the local run with a
message that points at it. Each test copies the synthesized assembly,
breaks one connection, and runs the local platform on the copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from local.lambda_runtime import HandlerError
from local.runner import LocalPlatform
from local.template import WiringError
from tests.test_local_runner import child_pids
from vod.keys import UPLOADS_PREFIX

SOURCE = "StorageSourceBucketB2F37168"
UPLOAD = "UploadApiUploadFunction29DF3109"
VIDEOS_ROLE = "UploadApiVideosFunctionRole881C1B35"
INGEST = "IngestFunction83726A21"
TIMEOUT = 10


def broken_copy(
    synth, tmp_path: Path, breaks: Callable[[dict[str, Any]], None]
) -> Path:
    """The synthesized assembly, copied, with ``breaks`` applied to its template."""
    copy = tmp_path / "cdk.out"
    shutil.copytree(synth.outdir, copy)
    template_file = copy / "Vod.template.json"
    template = json.loads(template_file.read_text())
    breaks(template["Resources"])
    template_file.write_text(json.dumps(template))
    return copy


def notification_prefix(prefix: str) -> Callable[[dict[str, Any]], None]:
    def breaks(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            if resource["Type"] == "Custom::S3BucketNotifications":
                configuration = resource["Properties"]["NotificationConfiguration"]
                for target in configuration["LambdaFunctionConfigurations"]:
                    for rule in target["Filter"]["Key"]["FilterRules"]:
                        rule["Value"] = prefix

    return breaks


def variable(function: str, name: str, value) -> Callable[[dict[str, Any]], None]:
    def breaks(resources: dict[str, Any]) -> None:
        resources[function]["Properties"]["Environment"]["Variables"][name] = value

    return breaks


def start(assembly: Path, tmp_path: Path, **options) -> LocalPlatform:
    return LocalPlatform(
        assembly,
        web_port=0,
        run_dir=tmp_path / "run",
        worker_stop_seconds=1,
        **options,
    ).start()


def post_upload(platform: LocalPlatform, token: str, path: Path | None = None) -> str:
    """A browser-style POST upload through the API of ``path`` (a few bytes
    that are not a video when None); returns the video id."""
    name = path.name if path else "clip.mp4"
    body = path.read_bytes() if path else b"not really a video"
    answer = requests.get(
        f"{platform.api_url}/s3/params",
        params={"filename": name, "type": "video/mp4"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    params = answer.json()
    stored = requests.post(
        params["url"],
        data=params["fields"],
        files={"file": (name, body, "video/mp4")},
        timeout=TIMEOUT,
    )
    assert stored.status_code in (200, 201, 204), stored.text
    return str(params["fields"]["key"].split("/")[2])


def test_a_wrong_notification_prefix_stops_the_run_and_names_it(synth, tmp_path):
    assembly = broken_copy(synth, tmp_path, notification_prefix("wrong/"))
    before = child_pids()
    with pytest.raises(WiringError) as raised:
        start(assembly, tmp_path)
    message = str(raised.value)
    assert f"uploads to bucket {SOURCE}" in message
    assert f"keys like '{UPLOADS_PREFIX}" in message
    assert "ObjectCreated:CompleteMultipartUpload" in message
    assert "prefix 'wrong/'" in message
    assert child_pids() == before


def test_an_upload_under_a_wrong_prefix_creates_no_job_and_the_wait_says_why(
    synth, tmp_path
):
    assembly = broken_copy(synth, tmp_path, notification_prefix("wrong/"))
    platform = start(assembly, tmp_path, check_wiring=False)
    try:
        assert any("prefix 'wrong/'" in p for p in platform.wiring_problems)
        token = platform.mint_token()
        video_id = post_upload(platform, token)
        with pytest.raises(WiringError) as raised:
            platform.wait_for_video(video_id, token, timeout=TIMEOUT)
    finally:
        platform.stop()
    message = str(raised.value)
    assert f"upload s3://{platform.template.resources[SOURCE].ref}/" in message
    assert f"/{video_id}/clip.mp4 created no job" in message
    assert "ObjectCreated:Post" in message
    assert "prefix 'wrong/'" in message


def test_a_ref_to_a_resource_the_template_lacks_stops_the_run(synth, tmp_path):
    assembly = broken_copy(
        synth, tmp_path, variable(UPLOAD, "VOD_TABLE_NAME", {"Ref": "VideoTableTypo"})
    )
    with pytest.raises(WiringError) as raised:
        start(assembly, tmp_path)
    message = str(raised.value)
    assert f"{UPLOAD} environment variable VOD_TABLE_NAME" in message
    assert "Ref 'VideoTableTypo' names no resource" in message


def test_a_grant_dropped_from_a_role_fails_its_call_naming_role_and_action(
    synth, tmp_path
):
    """Listing videos queries the table's owner index; without that grant
    the role still allows items on the table, so the run starts, and the
    call fails as AWS fails it."""

    def drop_query_grant(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy":
                document = resource["Properties"]["PolicyDocument"]
                document["Statement"] = [
                    s for s in document["Statement"] if s["Action"] != "dynamodb:Query"
                ]

    platform = start(broken_copy(synth, tmp_path, drop_query_grant), tmp_path)
    try:
        listed = requests.get(
            f"{platform.api_url}/videos",
            headers={"Authorization": f"Bearer {platform.mint_token()}"},
            timeout=TIMEOUT,
        )
        denials = list(platform.access.denials if platform.access else [])
    finally:
        platform.stop()
    assert listed.status_code == 500
    role = platform.template.resources[VIDEOS_ROLE].ref
    (denial,) = denials
    assert denial.startswith(f"User: arn:aws:sts::123456789012:assumed-role/{role}/")
    assert " is not authorized to perform: dynamodb:Query on resource: " in denial
    assert denial.endswith(
        "/index/byOwner because no identity-based policy allows the "
        "dynamodb:Query action"
    )


def test_a_module_missing_from_the_lambda_asset_fails_the_start(synth, tmp_path):
    assembly = broken_copy(synth, tmp_path, lambda _resources: None)
    platform = LocalPlatform(assembly, web_port=0, run_dir=tmp_path / "run")
    ingest = platform.template.functions()[INGEST]
    # A module only the ingest function imports: every function shares the
    # asset, and all of them import the shared model and what it imports.
    (ingest.asset_dir / "lambdas" / "ingest" / "mediaconvert.py").unlink()
    before = child_pids()
    with pytest.raises(HandlerError) as raised:
        platform.start()
    message = str(raised.value)
    assert "lambdas.ingest.app.handler cannot be loaded from its asset" in message
    assert "lambdas.ingest.mediaconvert" in message
    assert child_pids() == before


def test_a_dockerfile_that_leaves_out_the_shared_package_stops_the_job(synth, tmp_path):
    assembly = broken_copy(synth, tmp_path, lambda _resources: None)
    platform = LocalPlatform(
        assembly, web_port=0, run_dir=tmp_path / "run", worker_stop_seconds=1
    )
    task = platform.template.task()
    dockerfile = task.build_dir / task.dockerfile
    dockerfile.write_text(
        "\n".join(
            line
            for line in dockerfile.read_text().splitlines()
            if not line.startswith("COPY vod")
        )
    )
    platform.start()
    try:
        token = platform.mint_token()
        video_id = post_upload(platform, token)
        with pytest.raises(WiringError, match="every worker exited") as raised:
            platform.wait_for_video(video_id, token, timeout=TIMEOUT)
        log = (platform.run_dir / "logs" / "worker-1.log").read_text()
    finally:
        platform.stop()
    assert "worker-*.log" in str(raised.value)
    assert "No module named 'vod'" in log
