"""The job message, the worker's settings, and the queue adapter on moto."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import client, make_queue
from vod.jobs import JobMessage, TaskKind
from vod.ladder import DEFAULT_LADDER
from vod.loudness import LoudnessTarget
from vod.settings import Env, MissingSetting, WorkerSettings, loudness_environment
from worker.messages import Heartbeat, JobsQueue

REQUIRED = {
    Env.TABLE_NAME: "videos",
    Env.SOURCE_BUCKET: "uploads",
    Env.OUTPUT_BUCKET: "outputs",
    Env.JOBS_QUEUE_URL: "http://127.0.0.1:1/queue/jobs",
}


def test_job_message_round_trips_in_the_agreed_shape():
    message = JobMessage(
        "v1", "uploads", "uploads/o/v1/a.mp4", etag='"abc"', sequencer="0A1"
    )
    body = message.to_json()
    assert json.loads(body) == {
        "videoId": "v1",
        "bucket": "uploads",
        "key": "uploads/o/v1/a.mp4",
        "etag": '"abc"',
        "sequencer": "0A1",
        "task": "video",
    }
    assert JobMessage.from_json(body) == message
    assert message.task == "video"


def test_chunk_and_audio_jobs_name_their_task():
    video = JobMessage("v1", "uploads", "uploads/o/v1/a.mp4")
    chunk = video.for_task(TaskKind.CHUNK, 3)
    assert json.loads(chunk.to_json())["chunk"] == 3
    assert JobMessage.from_json(chunk.to_json()) == chunk
    assert chunk.task == "chunk-0003"
    assert video.for_task(TaskKind.AUDIO).task == "audio"
    with pytest.raises(ValueError, match="chunk index"):
        video.for_task(TaskKind.CHUNK)


def test_job_message_optional_fields_may_be_absent_or_null():
    parsed = JobMessage.from_json(
        '{"videoId": "v", "bucket": "b", "key": "k", "etag": null}'
    )
    assert parsed == JobMessage("v", "b", "k")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"bucket": "b", "key": "k"}', "videoId"),
        ('{"videoId": "", "bucket": "b", "key": "k"}', "videoId"),
        ('{"videoId": "v", "bucket": 3, "key": "k"}', "bucket"),
        ('{"videoId": "v", "bucket": "b", "key": "k", "etag": 5}', "etag"),
        ('{"videoId": "v", "bucket": "b", "key": "k", "task": "x"}', "task"),
        ('{"videoId": "v", "bucket": "b", "key": "k", "task": "chunk"}', "chunk"),
        ('{"videoId": "v", "bucket": "b", "key": "k", "chunk": 1}', "no 'chunk'"),
    ],
)
def test_malformed_job_messages_raise_value_error_saying_why(body, message):
    with pytest.raises(ValueError, match=message):
        JobMessage.from_json(body)


def test_worker_settings_defaults():
    settings = WorkerSettings.from_env(REQUIRED)
    assert settings.ladder == DEFAULT_LADDER
    assert settings.heartbeat_seconds < settings.visibility_timeout_seconds
    assert settings.x264_preset == "veryfast"
    assert settings.stop_timeout_seconds < 120


def test_worker_settings_read_every_variable():
    env = {
        **REQUIRED,
        Env.LADDER: '[{"name": "low", "shortSide": 240, "maxKbps": 400}]',
        Env.HEARTBEAT_SECONDS: "5",
        Env.VISIBILITY_TIMEOUT_SECONDS: "30",
        Env.STOP_TIMEOUT_SECONDS: "10",
        Env.WORK_DIR: "/scratch",
        Env.X264_PRESET: "medium",
        Env.PROGRESS_INTERVAL_SECONDS: "2",
        Env.HDR_LADDER: "TRUE",
    }
    settings = WorkerSettings.from_env(env)
    assert [r.name for r in settings.ladder] == ["low"]
    assert (settings.heartbeat_seconds, settings.visibility_timeout_seconds) == (5, 30)
    assert settings.stop_timeout_seconds == 10
    assert settings.work_dir == "/scratch"
    assert settings.x264_preset == "medium"
    assert settings.progress_interval_seconds == 2
    assert settings.hdr_ladder is True
    assert WorkerSettings.from_env(REQUIRED).hdr_ladder is False
    with pytest.raises(MissingSetting, match=f"{Env.HDR_LADDER} must be true or"):
        WorkerSettings.from_env({**REQUIRED, Env.HDR_LADDER: "yes"})
    assert settings.queue_url == REQUIRED[Env.JOBS_QUEUE_URL]


def test_worker_settings_refuse_a_heartbeat_slower_than_the_timeout():
    env = {
        **REQUIRED,
        Env.HEARTBEAT_SECONDS: "30",
        Env.VISIBILITY_TIMEOUT_SECONDS: "30",
    }
    with pytest.raises(MissingSetting, match=Env.HEARTBEAT_SECONDS):
        WorkerSettings.from_env(env)


def test_worker_settings_require_the_queue():
    env = {k: v for k, v in REQUIRED.items() if k != Env.JOBS_QUEUE_URL}
    with pytest.raises(MissingSetting, match=Env.JOBS_QUEUE_URL):
        WorkerSettings.from_env(env)


@pytest.mark.parametrize(
    "target", [LoudnessTarget(-16, -1), LoudnessTarget(-23.5, -2), None]
)
def test_the_stacks_loudness_target_reaches_the_worker(target):
    env = {**REQUIRED, **loudness_environment(target)}
    assert WorkerSettings.from_env(env).loudness == target
    assert WorkerSettings.from_env(REQUIRED).loudness == LoudnessTarget(-16, -1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (Env.LOUDNESS_TARGET_LUFS, "-3"),
        (Env.LOUDNESS_TRUE_PEAK_DBTP, "-9"),
        (Env.MAX_AUDIO_TRACKS, "0"),
    ],
)
def test_worker_settings_refuse_audio_settings_out_of_range(name, value):
    with pytest.raises(MissingSetting, match=name):
        WorkerSettings.from_env({**REQUIRED, name: value})


def test_worker_settings_reject_a_bad_ladder():
    with pytest.raises(ValueError, match="shortSide"):
        WorkerSettings.from_env({**REQUIRED, Env.LADDER: '[{"name": "x"}]'})


def test_queue_receives_one_message_and_settles_it(moto):
    queue_url, _ = make_queue(moto)
    sqs = client(moto, "sqs")
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    queue = JobsQueue(sqs, queue_url, visibility_timeout=30)
    message = queue.receive(wait_seconds=0)
    assert message is not None
    assert message.receive_count == 1
    queue.release(message)
    bodies = set()
    for _ in range(2):
        again = queue.receive(wait_seconds=0)
        assert again is not None
        bodies.add(again.body)
        queue.delete(again)
    assert bodies == {"first", "second"}
    assert queue.receive(wait_seconds=0) is None


def test_extend_keeps_the_message_hidden_past_its_first_timeout(moto):
    queue_url, _ = make_queue(moto)
    sqs = client(moto, "sqs")
    sqs.send_message(QueueUrl=queue_url, MessageBody="job")
    queue = JobsQueue(sqs, queue_url, visibility_timeout=2)
    message = queue.receive(wait_seconds=0)
    assert message is not None
    time.sleep(1.2)
    queue.extend(message)
    time.sleep(1.2)
    assert queue.receive(wait_seconds=0) is None
    queue.release(message)
    again = queue.receive(wait_seconds=0)
    assert again is not None
    assert again.receive_count == 2


def test_heartbeat_beats_until_stopped_and_survives_failures():
    beats = []

    def beat():
        beats.append(time.monotonic())
        if len(beats) == 1:
            raise ConnectionError("one lost extension")

    with Heartbeat(0.05, beat):
        time.sleep(0.4)
    count = len(beats)
    time.sleep(0.15)
    assert count >= 3
    assert len(beats) == count
