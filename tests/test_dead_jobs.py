"""The dead-jobs function on Lambda's SQS event JSON, against moto's
DynamoDB: a dead-lettered job fails its video with the ledger's reason,
unless its task is done, a live worker holds it, or the video is gone or
finished."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from lambdas.dead_jobs import app
from lambdas.dead_jobs.app import Outcome, handler, settle
from tests.conftest import make_table
from vod.jobs import JobMessage, TaskKind, chunk_task
from vod.keys import upload_key
from vod.ladder import Variant
from vod.model import Status, Video, now_iso
from vod.plan import Mode, TranscodePlan, plan_chunks
from vod.repository import VideoRepository
from vod.settings import Env

FIXTURE = Path(__file__).parent / "fixtures" / "events" / "sqs_dead_jobs.json"
#: The fixture's first message: chunk 3 of v1.
STALLED = chunk_task(3)
#: Chunk 4 of 11 runs from 2:06 to 3:06: one 6 s segment, then 60 s chunks.
STALLED_DESCRIBED = "chunk 4 of 11 (2:06-3:06)"


def ten_minute_plan() -> TranscodePlan:
    rate = Fraction(30)
    return TranscodePlan(
        mode=Mode.CHUNKED,
        duration=600.0,
        display_width=1920,
        display_height=1080,
        frame_rate=rate,
        variants=(Variant("1080p", 1920, 1080, 5_000_000),),
        has_audio=True,
        video_stream=0,
        preset="veryfast",
        seekable=True,
        chunks=plan_chunks(600.0, rate, 60),
    )


def chunked_video(
    video_id: str,
    *,
    tasks: dict[str, Any],
    status: Status = Status.PROCESSING,
    plan: TranscodePlan | None = None,
) -> Video:
    """A record mid-transcode, with its plan and its work ledger."""
    stamp = now_iso()
    return Video(
        id=video_id,
        owner="alice",
        status=status,
        key=upload_key("alice", video_id, "long.mp4"),
        filename="long.mp4",
        content_type="video/mp4",
        created_at=stamp,
        updated_at=stamp,
        plan=(plan or ten_minute_plan()).to_dict(),
        tasks=tasks,
    )


def stalled_tasks(now: float) -> dict[str, Any]:
    """Chunk 3 taken three times by workers that stopped renewing its lease."""
    return {
        chunk_task(0): {"done": True, "attempts": 1, "credited": 6.0},
        STALLED: {"owner": "task-9f2", "leaseUntil": now - 30, "attempts": 3},
    }


def chunk_job(video_id: str, chunk: int = 3) -> JobMessage:
    return JobMessage(
        video_id=video_id,
        bucket="vod-source-bucket",
        key=upload_key("alice", video_id, "long.mp4"),
        kind=TaskKind.CHUNK,
        chunk=chunk,
    )


def _event(*bodies: str) -> dict[str, Any]:
    """The fixture's shape, one record per body (the fixture's own bodies
    when none are given)."""
    event: dict[str, Any] = json.loads(FIXTURE.read_text())
    if bodies:
        template = event["Records"][0]
        event["Records"] = []
        for number, body in enumerate(bodies):
            record = copy.deepcopy(template)
            record["messageId"] = f"message-{number}"
            record["body"] = body
            event["Records"].append(record)
    return event


@pytest.fixture
def repository(aws_env, monkeypatch) -> Iterator[VideoRepository]:
    name = make_table(aws_env)
    monkeypatch.setenv(Env.TABLE_NAME, name)
    app._repository.cache_clear()
    yield VideoRepository(name)
    app._repository.cache_clear()


def _record(repository: VideoRepository, video_id: str) -> Video:
    video = repository.get(video_id)
    assert video is not None
    return video


def test_a_stalled_chunk_fails_its_video_and_a_malformed_message_is_dropped(
    repository, caplog
):
    repository.create(chunked_video("v1", tasks=stalled_tasks(time.time())))
    with caplog.at_level(logging.ERROR):
        answer = handler(_event(), None)
    assert answer == {"batchItemFailures": []}
    record = _record(repository, "v1")
    assert record.status is Status.FAILED
    assert record.error == (
        f"{STALLED_DESCRIBED} was started 3 times and never finished: the "
        "worker stopped each time without reporting an error (killed, out of "
        "memory, or cut off)"
    )
    assert "dead-lettered message is no job" in caplog.text


def test_a_job_whose_task_is_done_leaves_the_video_alone(repository):
    now = time.time()
    tasks = stalled_tasks(now)
    tasks[STALLED] = {"owner": "task-9f2", "leaseUntil": now - 30, "done": True}
    repository.create(chunked_video("v2", tasks=tasks))
    answer = handler(_event(chunk_job("v2").to_json()), None)
    assert answer == {"batchItemFailures": []}
    record = _record(repository, "v2")
    assert (record.status, record.error) == (Status.PROCESSING, None)


def test_a_task_a_live_worker_holds_is_judged_again_later(repository):
    now = time.time()
    tasks = stalled_tasks(now)
    tasks[STALLED] = {"owner": "task-9f2", "leaseUntil": now + 40, "attempts": 3}
    repository.create(chunked_video("v3", tasks=tasks))
    answer = handler(_event(chunk_job("v3").to_json()), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert _record(repository, "v3").status is Status.PROCESSING
    # Once the lease has run out, the same message fails the video.
    assert settle(chunk_job("v3").to_json(), repository, now + 41) is Outcome.FAILED
    assert STALLED_DESCRIBED in (_record(repository, "v3").error or "")


def test_a_video_job_never_started_fails_a_queued_video(repository):
    repository.create(chunked_video("v4", tasks={}, status=Status.QUEUED))
    job = JobMessage(video_id="v4", bucket="b", key=upload_key("alice", "v4", "x"))
    assert handler(_event(job.to_json()), None) == {"batchItemFailures": []}
    record = _record(repository, "v4")
    assert record.status is Status.FAILED
    assert record.error == (
        "the transcode was never started: its job was given up after repeated tries"
    )


def test_absent_and_finished_videos_are_left_alone(repository):
    repository.create(
        chunked_video("v5", tasks=stalled_tasks(time.time()), status=Status.READY)
    )
    now = time.time()
    assert settle(chunk_job("gone").to_json(), repository, now) is Outcome.NO_RECORD
    assert settle(chunk_job("v5").to_json(), repository, now) is Outcome.FINISHED
    assert _record(repository, "v5").status is Status.READY


def test_an_unreadable_plan_still_names_the_chunk(repository):
    video = chunked_video("v6", tasks=stalled_tasks(time.time()))
    repository.create(dataclasses.replace(video, plan={"mode": "chunked"}))
    assert settle(chunk_job("v6").to_json(), repository, time.time()) is Outcome.FAILED
    assert (_record(repository, "v6").error or "").startswith("chunk 4 was started")


def test_a_message_that_cannot_be_settled_is_reported_for_a_retry(aws_env, monkeypatch):
    monkeypatch.setenv(Env.TABLE_NAME, "no-such-table")
    app._repository.cache_clear()
    try:
        answer = handler(_event(chunk_job("v7").to_json(), "not a job"), None)
    finally:
        app._repository.cache_clear()
    # The read failed for the job; the malformed body needs no read.
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
