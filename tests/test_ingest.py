"""The ingest Lambda on real S3 event JSON, against moto's DynamoDB and SQS."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from lambdas.ingest.app import SqsJobSender, object_created_records, queue_upload
from tests.conftest import client, make_queue, make_table
from vod.jobs import JobMessage
from vod.keys import upload_key
from vod.model import Status, Video
from vod.repository import VideoRepository

FIXTURE = (
    Path(__file__).parent / "fixtures" / "events" / "s3_object_created_multipart.json"
)


def _event(bucket: str, key: str, name: str = "ObjectCreated:CompleteMultipartUpload"):
    event = json.loads(FIXTURE.read_text())
    record = event["Records"][0]
    record["eventName"] = name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return event


@pytest.fixture
def pipeline(aws_env):
    repository = VideoRepository(make_table(aws_env))
    queue_url, _ = make_queue(aws_env)
    return repository, SqsJobSender(queue_url), queue_url


def _upload(repository: VideoRepository, status: Status = Status.UPLOADING) -> Any:
    key = upload_key("alice", "v1", "My Holiday.mp4")
    repository.create(
        Video.new_upload(
            video_id="v1",
            owner="alice",
            key=key,
            filename="My Holiday.mp4",
            content_type="video/mp4",
            size=None,
            upload_id="up-1",
            expires_at=int(time.time()) + 3600,
        )
    )
    if status is Status.UPLOADED:
        repository.transition("v1", Status.UPLOADED)
    return repository.get("v1")


def _messages(moto, queue_url: str) -> list[dict[str, Any]]:
    sqs = client(moto, "sqs")
    received = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in received]


def test_records_decode_url_encoded_keys_and_skip_other_events():
    event = _event("b", "uploads/alice/v1/My Holiday+1.mp4")
    event["Records"].append(
        {**event["Records"][0], "eventName": "ObjectRemoved:Delete"}
    )
    (created,) = list(object_created_records(event))
    assert created.key == "uploads/alice/v1/My Holiday+1.mp4"
    assert created.size == 26214400
    assert created.sequencer == "0055AED6DCD90281E5"


@pytest.mark.parametrize(
    ("finished", "outcome", "status"),
    [
        (False, "replaced", Status.FAILED),
        (True, "replaced-after-finish", Status.READY),
    ],
)
def test_an_original_written_again_after_it_was_queued_fails_its_video(
    aws_env, pipeline, finished, outcome, status
):
    """A form upload's policy is good for minutes: the same form could write
    the key again, bigger and unchecked. The replay of an event is a
    duplicate; another object under the key is not."""
    repository, jobs, queue_url = pipeline
    video = _upload(repository)
    (created,) = object_created_records(_event("src", video.key))
    assert queue_upload(created, repository, jobs) == "queued"
    assert repository.get("v1").source_etag == created.etag
    if finished:
        repository.transition("v1", Status.READY)
    assert queue_upload(created, repository, jobs) == "duplicate"
    replacement = dataclasses.replace(created, etag='"0123abcd"', size=10**12)
    assert queue_upload(replacement, repository, jobs, max_upload_bytes=10) == outcome
    record = repository.get("v1")
    assert record.status is status
    if status is Status.FAILED:
        assert record.error.startswith("the uploaded file was replaced after")
    assert len(_messages(aws_env, queue_url)) == 1, "no second job"


@pytest.mark.parametrize("start", [Status.UPLOADING, Status.UPLOADED])
def test_an_upload_is_queued_once_with_one_job(aws_env, pipeline, start):
    repository, jobs, queue_url = pipeline
    video = _upload(repository, start)
    (created,) = object_created_records(_event("src", video.key))
    assert queue_upload(created, repository, jobs) == "queued"
    record = repository.get("v1")
    assert record.status is Status.QUEUED
    assert record.size == 26214400
    assert record.expires_at is None, "a queued video must not expire"
    assert queue_upload(created, repository, jobs) == "duplicate"
    (message,) = _messages(aws_env, queue_url)
    job = JobMessage.from_json(json.dumps(message))
    assert job == JobMessage(
        video_id="v1",
        bucket="src",
        key=video.key,
        etag="d41d8cd98f00b204e9800998ecf8427e-4",
        sequencer="0055AED6DCD90281E5",
    )


def test_an_object_without_a_record_is_logged_and_ignored(aws_env, pipeline, caplog):
    repository, jobs, queue_url = pipeline
    (created,) = object_created_records(_event("src", "uploads/alice/ghost/x.mp4"))
    assert queue_upload(created, repository, jobs) == "no-record"
    assert "no video record matches" in caplog.text
    assert _messages(aws_env, queue_url) == []


def test_a_foreign_key_under_a_real_video_id_is_not_queued(aws_env, pipeline):
    repository, jobs, queue_url = pipeline
    _upload(repository)
    (created,) = object_created_records(_event("src", "uploads/mallory/v1/evil.mp4"))
    assert queue_upload(created, repository, jobs) == "no-record"
    assert repository.get("v1").status is Status.UPLOADING
    assert _messages(aws_env, queue_url) == []


def test_keys_outside_the_layout_are_ignored(aws_env, pipeline):
    repository, jobs, _ = pipeline
    (created,) = object_created_records(_event("src", "uploads/readme.txt"))
    assert queue_upload(created, repository, jobs) == "ignored"


def test_a_job_that_cannot_be_sent_fails_the_record_with_a_reason(aws_env, pipeline):
    repository, _, _ = pipeline
    video = _upload(repository)

    class Broken:
        def send(self, _job):
            raise RuntimeError("queue unavailable")

    (created,) = object_created_records(_event("src", video.key))
    assert queue_upload(created, repository, Broken()) == "failed"
    record = repository.get("v1")
    assert record.status is Status.FAILED
    assert "queue unavailable" in record.error


def test_an_object_above_the_size_limit_fails_its_record_without_a_job(
    aws_env, pipeline
):
    repository, jobs, queue_url = pipeline
    video = _upload(repository)
    (created,) = object_created_records(_event("src", video.key))
    assert created.size is not None
    limit = created.size - 1
    assert queue_upload(created, repository, jobs, max_upload_bytes=limit) == (
        "too-large"
    )
    record = repository.get("v1")
    assert record.status is Status.FAILED
    assert record.error == (
        f"the upload is {created.size} bytes, above the {limit}-byte maximum"
    )
    assert record.expires_at is None, "the failed record stays visible"
    assert _messages(aws_env, queue_url) == []
    assert queue_upload(created, repository, jobs, max_upload_bytes=created.size) == (
        "duplicate"
    ), "a later, in-limit replay finds the record failed"
