"""The ingest Lambda in MediaConvert mode: one CreateJob per upload, checked
by botocore's Stubber (which validates the request against the MediaConvert
model), with the records in moto's DynamoDB."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import botocore.session
import pytest
from botocore.stub import ANY, Stubber

from lambdas.ingest.app import (
    SqsJobSender,
    job_sender,
    object_created_records,
    queue_upload,
)
from lambdas.ingest.mediaconvert import MediaConvertJobSender
from lambdas.mediaconvert.job import create_job_request
from tests.conftest import make_table
from vod.jobs import JobMessage
from vod.keys import upload_key
from vod.loudness import LoudnessTarget
from vod.model import Status, Video
from vod.repository import VideoRepository
from vod.settings import Env, MissingSetting, loudness_environment, read_loudness

FIXTURE = (
    Path(__file__).parent / "fixtures" / "events" / "s3_object_created_multipart.json"
)
VIDEO_ID = "3f2b8c1e-7d4a-4e0b-9a61-2c5d8e9f0a1b"
ROLE_ARN = "arn:aws:iam::111122223333:role/Vod-TranscoderServiceRole-1A2B3C4D"
TEMPLATE = "Vod-JobTemplate-1A2B3C4D5E6F"
JOB_ID = "1671477617078-2886ye"


@pytest.fixture
def mediaconvert():
    client = botocore.session.get_session().create_client(
        "mediaconvert",
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def repository(aws_env):
    return VideoRepository(make_table(aws_env))


def _sender(client) -> MediaConvertJobSender:
    return MediaConvertJobSender(
        role_arn=ROLE_ARN,
        template_name=TEMPLATE,
        output_bucket="vod-output-bucket",
        mediaconvert=client,
    )


def _upload(repository: VideoRepository) -> Video:
    key = upload_key("alice", VIDEO_ID, "holiday.mp4")
    repository.create(
        Video.new_upload(
            video_id=VIDEO_ID,
            owner="alice",
            key=key,
            filename="holiday.mp4",
            content_type="video/mp4",
            size=None,
            upload_id="up-1",
            expires_at=int(time.time()) + 3600,
        )
    )
    video = repository.get(VIDEO_ID)
    assert video is not None
    return video


def _created(key: str):
    event = json.loads(FIXTURE.read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = "vod-source-bucket"
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    (created,) = object_created_records(event)
    return created


def _expected_request() -> dict[str, Any]:
    return {
        "JobTemplate": TEMPLATE,
        "Role": ROLE_ARN,
        "Settings": ANY,
        "UserMetadata": {"videoId": VIDEO_ID, "vodPipeline": TEMPLATE},
        "StatusUpdateInterval": "SECONDS_30",
        "AccelerationSettings": {"Mode": "PREFERRED"},
        "ClientRequestToken": VIDEO_ID,
    }


def _create_job_response(request: dict[str, Any]) -> dict[str, Any]:
    """CreateJob's answer: the job as MediaConvert stored it, just submitted."""
    submitted = datetime(2022, 12, 19, 19, 20, 17, tzinfo=UTC)
    return {
        "Job": {
            "AccelerationSettings": request["AccelerationSettings"],
            # Until MediaConvert has decided whether the job can be.
            "AccelerationStatus": "IN_PROGRESS",
            "Arn": f"arn:aws:mediaconvert:us-west-2:111122223333:jobs/{JOB_ID}",
            "ClientRequestToken": request["ClientRequestToken"],
            "CreatedAt": submitted,
            "Id": JOB_ID,
            "JobTemplate": request["JobTemplate"],
            "Messages": {"Info": [], "Warning": []},
            "Priority": 0,
            "Queue": "arn:aws:mediaconvert:us-west-2:111122223333:queues/Default",
            "Role": request["Role"],
            "Settings": copy.deepcopy(request["Settings"]),
            "Status": "SUBMITTED",
            "StatusUpdateInterval": request["StatusUpdateInterval"],
            "Timing": {"SubmitTime": submitted},
            "UserMetadata": request["UserMetadata"],
        }
    }


def _recording(client) -> list[dict[str, Any]]:
    """The CreateJob parameters the client is called with."""
    calls: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.mediaconvert.CreateJob",
        lambda params, **_: calls.append(copy.deepcopy(params)),
    )
    return calls


def test_an_upload_submits_one_job_from_the_template(mediaconvert, repository):
    client, stubber = mediaconvert
    calls = _recording(client)
    video = _upload(repository)
    # The answer echoes the job as stored; Stubber checks it has CreateJob's
    # response shape, Settings included.
    stored = create_job_request(
        JobMessage(video_id=VIDEO_ID, bucket="vod-source-bucket", key=video.key),
        output_bucket="vod-output-bucket",
        role_arn=ROLE_ARN,
        template_name=TEMPLATE,
    )
    stubber.add_response(
        "create_job", _create_job_response(stored), _expected_request()
    )

    created = _created(video.key)
    assert queue_upload(created, repository, _sender(client)) == "queued"
    assert queue_upload(created, repository, _sender(client)) == "duplicate"

    queued = repository.get(VIDEO_ID)
    assert queued is not None
    assert queued.status is Status.QUEUED
    (call,) = calls
    assert call["Settings"]["Inputs"][0]["FileInput"] == (
        f"s3://vod-source-bucket/{video.key}"
    )
    destinations = [
        settings["Destination"]
        for group in call["Settings"]["OutputGroups"]
        for settings in group["OutputGroupSettings"].values()
        if isinstance(settings, dict)
    ]
    assert destinations == [
        f"s3://vod-output-bucket/videos/{VIDEO_ID}/master",
        f"s3://vod-output-bucket/videos/{VIDEO_ID}/poster",
    ]


def test_a_refused_job_fails_the_record_with_mediaconverts_reason(
    mediaconvert, repository
):
    client, stubber = mediaconvert
    video = _upload(repository)
    stubber.add_client_error(
        "create_job",
        service_error_code="BadRequestException",
        service_message="/inputs/0/fileInput: Should match pattern",
        http_status_code=400,
        expected_params=_expected_request(),
    )
    assert queue_upload(_created(video.key), repository, _sender(client)) == "failed"
    record = repository.get(VIDEO_ID)
    assert record is not None
    assert record.status is Status.FAILED
    assert "could not queue the transcode job" in record.error
    assert "BadRequestException" in record.error
    assert "Should match pattern" in record.error


def test_the_transcoder_setting_picks_the_sender(aws_env):
    mediaconvert_env = {
        Env.TRANSCODER: "mediaconvert",
        Env.MEDIACONVERT_ROLE_ARN: ROLE_ARN,
        Env.MEDIACONVERT_JOB_TEMPLATE: TEMPLATE,
        Env.OUTPUT_BUCKET: "vod-output-bucket",
    }
    assert isinstance(job_sender(mediaconvert_env), MediaConvertJobSender)
    fargate_env = {Env.JOBS_QUEUE_URL: f"{aws_env.url}/111122223333/jobs"}
    assert isinstance(job_sender(fargate_env), SqsJobSender)
    with pytest.raises(MissingSetting, match=Env.MEDIACONVERT_ROLE_ARN):
        job_sender({Env.TRANSCODER: "mediaconvert"})
    with pytest.raises(MissingSetting, match="fargate, mediaconvert"):
        job_sender({Env.TRANSCODER: "elastictranscoder"})


def _audio_description(settings: dict[str, Any]) -> dict[str, Any]:
    hls = settings["OutputGroups"][0]
    (audio,) = [o for o in hls["Outputs"] if "AudioDescriptions" in o]
    description: dict[str, Any] = audio["AudioDescriptions"][0]
    return description


def test_the_jobs_normalize_loudness_to_the_stacks_target(mediaconvert):
    client, stubber = mediaconvert
    calls = _recording(client)
    job = JobMessage(video_id=VIDEO_ID, bucket="vod-source-bucket", key="u/a.mp4")
    stubber.add_response(
        "create_job",
        _create_job_response(
            create_job_request(
                job,
                output_bucket="vod-output-bucket",
                role_arn=ROLE_ARN,
                template_name=TEMPLATE,
            )
        ),
        _expected_request(),
    )
    # What the stack sets for the ingest function, as it reads it.
    target = read_loudness(loudness_environment(LoudnessTarget(-23, -2)))
    MediaConvertJobSender(
        role_arn=ROLE_ARN,
        template_name=TEMPLATE,
        output_bucket="vod-output-bucket",
        loudness=target,
        mediaconvert=client,
    ).send(job)
    (call,) = calls
    normalization = _audio_description(call["Settings"])["AudioNormalizationSettings"]
    assert normalization["TargetLkfs"] == -23
    assert normalization["TruePeakLimiterThreshold"] == -2
