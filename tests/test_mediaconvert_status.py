"""The status Lambda on MediaConvert's job state change events (AWS's
documented examples, tagged as our jobs), against moto's DynamoDB; the
GetJob call that tells a finished job's tier, against botocore's Stubber."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from lambdas.mediaconvert import status
from lambdas.mediaconvert.job import LIST_PRICES
from lambdas.mediaconvert.status import (
    apply,
    handler,
    job_acceleration,
    job_state_change,
)
from tests.conftest import make_table
from vod.keys import upload_key
from vod.model import Status, Video
from vod.repository import VideoRepository
from vod.settings import Env

FIXTURES = Path(__file__).parent / "fixtures" / "events"
#: The job of the COMPLETE fixture.
JOB_ID = "1671476818694-phptj0"
#: The COMPLETE fixture's outputs, 30.041 s each: 1080p, 720p and the
#: 1920x1080 poster capture are HD (twice), 540p, 432p and 360p SD (once).
NORMALIZED_MINUTES = (3 * 2 + 3) * 30.041 / 60


def _event(name: str, **detail: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(
        (FIXTURES / f"mediaconvert_{name}.json").read_text()
    )
    event["detail"].update(detail)
    return event


#: What GetJob answers about the job's acceleration, per test.
LOOKED_UP: dict[str, Any] = {}


def _looked_up(job_id: str) -> str | None:
    answer = LOOKED_UP[job_id]
    if isinstance(answer, Exception):
        raise answer
    return str(answer)


@pytest.fixture
def table(aws_env, monkeypatch):
    name = make_table(aws_env)
    monkeypatch.setenv(Env.TABLE_NAME, name)
    monkeypatch.setenv(Env.MEDIACONVERT_BASIC_USD_PER_MINUTE, "0.0075")
    monkeypatch.setenv(Env.MEDIACONVERT_PRO_USD_PER_MINUTE, "0.012")
    monkeypatch.setattr(status, "_acceleration", _looked_up)
    LOOKED_UP.clear()
    LOOKED_UP[JOB_ID] = "NOT_ACCELERATED"
    status._repository.cache_clear()
    status._prices.cache_clear()
    yield name
    status._repository.cache_clear()
    status._prices.cache_clear()


def _queued(table: str, video_id: str = "v1") -> VideoRepository:
    repository = VideoRepository(table)
    repository.create(
        Video.new_upload(
            video_id=video_id,
            owner="alice",
            key=upload_key("alice", video_id, "holiday.mp4"),
            filename="holiday.mp4",
            content_type="video/mp4",
            size=None,
            upload_id="up-1",
            expires_at=int(time.time()) + 3600,
        )
    )
    repository.transition(video_id, Status.QUEUED, fields={"progress": 0})
    return repository


def _record(repository: VideoRepository, video_id: str = "v1") -> Video:
    video = repository.get(video_id)
    assert video is not None
    return video


def _deliver(*names: str) -> list[str]:
    return [handler(_event(name), None)["outcome"] for name in names]


def test_progress_events_move_the_record_to_processing_with_a_percent(table):
    repository = _queued(table)
    assert _deliver("progressing") == ["PROCESSING"]
    assert _record(repository).progress == 0
    assert _deliver("status_update") == ["PROCESSING"]
    record = _record(repository)
    assert (record.status, record.progress) == (Status.PROCESSING, 7)


def test_a_late_progressing_event_does_not_reset_the_percent(table):
    repository = _queued(table)
    assert _deliver("status_update", "progressing") == ["PROCESSING", "stale"]
    assert _record(repository).progress == 7


def test_complete_writes_the_fields_the_worker_writes(table):
    repository = _queued(table)
    repository.transition("v1", Status.PROCESSING, fields={"error": "old"})
    assert _deliver("complete") == ["READY"]
    record = _record(repository)
    assert record.status is Status.READY
    assert record.progress == 100
    assert record.error is None
    assert record.duration == 30.08
    assert (record.width, record.height) == (1920, 1080)
    assert record.playback == "videos/v1/master.m3u8"
    assert record.poster == "videos/v1/poster.0000005.jpg"
    assert [(r.name, r.width, r.height) for r in record.renditions] == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("540p", 960, 540),
        ("432p", 768, 432),
        ("360p", 640, 360),
    ]
    public = record.to_public("https://d111111abcdef8.cloudfront.net")
    assert public["playbackUrl"] == (
        "https://d111111abcdef8.cloudfront.net/videos/v1/master.m3u8"
    )
    assert public["cost"] == {
        "normalizedMinutes": round(NORMALIZED_MINUTES, 3),
        "usd": round(NORMALIZED_MINUTES * 0.0075, 6),
        "basis": "MediaConvert Basic tier at $0.0075 per normalized minute",
    }


def test_an_accelerated_job_costs_the_professional_tiers_price(table, monkeypatch):
    monkeypatch.setenv(Env.MEDIACONVERT_PRO_USD_PER_MINUTE, "0.02")
    repository = _queued(table)
    LOOKED_UP[JOB_ID] = "ACCELERATED"
    assert _deliver("complete") == ["READY"]
    cost = _record(repository).cost
    assert cost is not None
    assert cost["usd"] == round(NORMALIZED_MINUTES * 0.02, 6)
    assert cost["basis"] == (
        "MediaConvert Professional tier at $0.02 per normalized minute"
    )


def test_a_tier_the_event_reports_needs_no_lookup(table):
    repository = _queued(table)
    LOOKED_UP[JOB_ID] = AssertionError("GetJob was called")
    event = _event("complete", accelerationStatus="ACCELERATED")
    assert handler(event, None) == {"outcome": "READY"}
    cost = _record(repository).cost
    assert cost is not None
    assert "Professional" in cost["basis"]


def test_an_unknown_tier_still_makes_the_video_ready_at_the_basic_price(table, caplog):
    repository = _queued(table)
    LOOKED_UP[JOB_ID] = RuntimeError("AccessDenied")
    with caplog.at_level(logging.WARNING):
        assert _deliver("complete") == ["READY"]
    cost = _record(repository).cost
    assert cost is not None
    assert "Basic" in cost["basis"]
    assert "acceleration status is unknown" in caplog.text


def test_the_tier_is_read_with_get_job():
    client = botocore.session.get_session().create_client(
        "mediaconvert",
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_job",
            {
                "Job": {
                    "Id": JOB_ID,
                    "Role": "arn:aws:iam::111122223333:role/Vod-MediaConvert",
                    "Settings": {},
                    "Status": "COMPLETE",
                    "AccelerationSettings": {"Mode": "PREFERRED"},
                    "AccelerationStatus": "ACCELERATED",
                    "CreatedAt": datetime(2022, 12, 19, 19, 6, 58, tzinfo=UTC),
                }
            },
            {"Id": JOB_ID},
        )
        assert job_acceleration(client, JOB_ID) == "ACCELERATED"
        stubber.assert_no_pending_responses()


def test_a_job_that_finishes_before_any_progress_goes_straight_to_ready(table):
    repository = _queued(table)
    assert _deliver("complete") == ["READY"]
    assert _record(repository).status is Status.READY


def test_events_after_the_end_change_nothing(table):
    repository = _queued(table)
    assert _deliver("complete", "status_update", "error", "complete") == [
        "READY",
        "stale",
        "stale",
        "stale",
    ]
    record = _record(repository)
    assert (record.status, record.progress, record.error) == (Status.READY, 100, None)


def test_an_error_fails_the_record_with_mediaconverts_code_and_message(table):
    repository = _queued(table)
    assert _deliver("status_update", "error") == ["PROCESSING", "FAILED"]
    record = _record(repository)
    assert record.status is Status.FAILED
    assert record.error == "MediaConvert error 1040: Example error message"


def test_a_canceled_job_fails_the_record(table):
    repository = _queued(table)
    event = _event("progressing", status="CANCELED")
    assert handler(event, None) == {"outcome": "FAILED"}
    assert _record(repository).error == "the MediaConvert job was canceled"


def test_complete_with_foreign_outputs_fails_instead_of_pointing_elsewhere(table):
    repository = _queued(table, "v2")
    event = _event("complete", userMetadata={"videoId": "v2"})
    assert handler(event, None) == {"outcome": "FAILED"}
    record = _record(repository, "v2")
    assert record.playback is None
    assert record.error is not None
    assert "unexpected outputs" in record.error
    assert "videos/v2/" in record.error


def test_events_of_other_jobs_or_for_no_record_are_ignored(table):
    _queued(table)
    assert handler(_event("complete", userMetadata={}), None) == {"outcome": "ignored"}
    assert handler({"detail-type": "Scheduled Event", "detail": {}}, None) == {
        "outcome": "ignored"
    }
    missing = job_state_change(_event("complete", userMetadata={"videoId": "gone"}))
    assert missing is not None
    assert (
        apply(
            missing,
            VideoRepository(table),
            prices=LIST_PRICES,
            acceleration=_looked_up,
        )
        == "stale"
    )


def test_a_status_update_without_a_percent_changes_nothing(table):
    repository = _queued(table)
    assert handler(_event("status_update", jobProgress={}), None) == {
        "outcome": "ignored"
    }
    assert _record(repository).status is Status.QUEUED
