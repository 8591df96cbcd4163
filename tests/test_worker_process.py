"""The worker as its container runs it, ``python -m worker``: killed mid-job,
stopped with SIGTERM, and the job redone by another worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.worker_support import REPO_ROOT, WORKER_ROOT, Stack, clip, resource
from vod.model import Status
from vod.repository import VideoRepository
from vod.settings import Env
from worker.hls import MediaPlaylist
from worker.messages import JobsQueue


class ReadyCounter(VideoRepository):
    def __init__(self, table_name, *, dynamodb):
        super().__init__(table_name, dynamodb=dynamodb)
        self.ready_writes = 0

    def apply(self, video_id, update):
        result = super().apply(video_id, update)
        if result.video is not None and result.video.status == Status.READY:
            self.ready_writes += 1
        return result


@pytest.fixture
def stack(moto):
    return Stack(moto)


def start_worker(stack, tmp_path, **overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(stack.env(tmp_path / "work", **overrides))
    env["PYTHONPATH"] = str(REPO_ROOT)
    log = (tmp_path / "worker.log").open("w")
    # Its own session, so the test can end the worker and its ffmpeg together.
    return subprocess.Popen(
        [sys.executable, "-m", "worker"],
        cwd=WORKER_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_status(stack, video_id, status, *, min_progress=0, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = stack.repository.get(video_id)
        if (
            video is not None
            and video.status == status
            and video.percent >= min_progress
        ):
            return video
        time.sleep(0.05)
    raise AssertionError(f"video {video_id} never reached {status}")


def terminate(process, timeout=60):
    """What ECS does on scale-in: SIGTERM to the container's main process."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def crash(process):
    """The task dies at once, ffmpeg and all."""
    os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout=10)


def log_events(tmp_path):
    lines = (tmp_path / "worker.log").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


def group_is_gone(process):
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_killed_worker_s_task_is_retried_once_its_lease_runs_out(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=4))
    worker = start_worker(
        stack,
        tmp_path,
        **{Env.VISIBILITY_TIMEOUT_SECONDS: "3", Env.HEARTBEAT_SECONDS: "1"},
    )
    wait_for_status(stack, video_id, Status.PROCESSING)
    assert crash(worker) == -signal.SIGKILL
    video = stack.repository.get(video_id)
    assert video.status == Status.PROCESSING
    assert video.to_public()["retrying"] is False
    # Still hidden by the dead worker's last heartbeat; it returns by itself.
    assert (
        JobsQueue(stack.sqs, stack.queue_url, visibility_timeout=30).receive(0) is None
    )
    time.sleep(3.2)
    public = stack.repository.get(video_id).to_public()
    assert (public["retrying"], public["attempts"]) == (True, 1)

    repository = ReadyCounter(stack.table, dynamodb=resource(stack.moto, "dynamodb"))
    second = stack.worker(
        tmp_path / "second",
        owner="second",
        repository=repository,
        visibility_timeout_seconds=30,
        heartbeat_seconds=10,
    )
    assert second.poll_once(wait_seconds=10)

    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    assert video.tasks["video"]["attempts"] == 2
    assert repository.ready_writes == 1
    assert video.to_public()["retrying"] is False
    outputs = stack.outputs(video_id)
    for folder in ["audio", *(r.name for r in video.renditions)]:
        playlist = MediaPlaylist.parse(
            stack.read_output(video_id, f"{folder}/index.m3u8").decode()
        )
        for uri in [playlist.init, *(uri for uri, _ in playlist.segments)]:
            assert f"{folder}/{uri}" in outputs
    assert stack.queue_depths() == (0, 0)


def test_sigterm_lets_the_current_job_finish_then_exits_zero(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=4))
    worker = start_worker(stack, tmp_path, **{Env.STOP_TIMEOUT_SECONDS: "60"})
    wait_for_status(stack, video_id, Status.PROCESSING)
    assert terminate(worker) == 0
    assert stack.repository.get(video_id).status == Status.READY
    assert stack.queue_depths() == (0, 0)
    events = log_events(tmp_path)
    assert events.index("worker.stopping") < events.index("job.ready")
    assert events[-1] == "worker.stopped"


def test_sigterm_past_the_stop_timeout_releases_the_message(stack, tmp_path):
    # Long enough that a loaded machine cannot finish it before the signal.
    video_id = stack.queue_video(clip(size="1280x720", seconds=40))
    worker = start_worker(stack, tmp_path, **{Env.STOP_TIMEOUT_SECONDS: "0"})
    # Progress is written while ffmpeg runs: this SIGTERM finds it encoding.
    wait_for_status(stack, video_id, Status.PROCESSING, min_progress=1)
    assert terminate(worker) == 0
    assert group_is_gone(worker)
    video = stack.repository.get(video_id)
    assert video.status == Status.PROCESSING
    assert video.tasks["video"]["leaseUntil"] == 0, "the task is given up too"
    assert "job.released" in log_events(tmp_path)
    released = JobsQueue(stack.sqs, stack.queue_url, visibility_timeout=30).receive(0)
    assert released is not None
    assert released.receive_count == 2
