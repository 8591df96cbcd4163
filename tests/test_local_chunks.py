"""Chunked transcoding on the local run of the synthesized stack, with its
three worker processes: hls.js in Chromium plays a long upload from its
start while it is still being encoded, across chunk boundaries; a worker
killed on every delivery of a job ends its video FAILED (through the
dead-letter queue and its consumer) and DELETE then works; a dead worker
process is replaced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from local.runner import LocalPlatform
from tests.browser_support import sign_in
from tests.test_browser import CARD, PLAYER, UPLOAD_BUTTON, UPLOAD_INPUT
from tests.test_local_runner import videos
from tests.test_wiring import post_upload
from tests.worker_support import clip
from vod.model import Status, Video
from vod.repository import VideoRepository
from vod.settings import Env

TABLE = "VideosTable41110721"
TIMEOUT = 10
#: Short chunks and leases, so that chunks, crashes and retries take seconds.
TASK_ENV = {
    Env.CHUNK_SECONDS: "6",
    Env.VISIBILITY_TIMEOUT_SECONDS: "3",
    Env.HEARTBEAT_SECONDS: "1",
    Env.X264_PRESET: "ultrafast",
    Env.PROGRESS_INTERVAL_SECONDS: "1",
}


@pytest.fixture(scope="module")
def platform(synth, web_root: Path, tmp_path_factory) -> Iterator[LocalPlatform]:
    with LocalPlatform(
        synth.outdir,
        web_root=web_root,
        web_port=0,
        run_dir=tmp_path_factory.mktemp("run"),
        task_env=TASK_ENV,
        worker_stop_seconds=1,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def records(platform: LocalPlatform) -> VideoRepository:
    return videos(platform)


def wait_for(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def signal_workers(platform: LocalPlatform, signum: int) -> None:
    for process in platform.workers:
        if process.poll() is None:
            os.killpg(process.pid, signum)


def holder_pid(video: Video | None, task: str) -> int | None:
    entry = (video.tasks or {}).get(task) if video else None
    if not entry or entry.get("done"):
        return None
    return int(str(entry["owner"]).split(":")[1])


def test_a_long_upload_plays_from_its_start_before_it_is_ready(
    platform,
    records,
    page: Page,
    tmp_path,
):
    video = tmp_path / "long.mp4"
    # Eight chunks: three to play while five are left to encode.
    video.write_bytes(clip(size="320x180", seconds=48).read_bytes())
    sign_in(page, platform.web_url, "long@example.com")
    page.set_input_files(UPLOAD_INPUT, video)
    page.click(UPLOAD_BUTTON)
    card = page.locator(CARD)
    card.wait_for(timeout=30_000)
    video_id = card.get_attribute("data-video-id")

    # Three chunks from the start play: freeze every worker (and its ffmpeg)
    # so that the rest cannot land while the player runs.
    def three_chunks_play():
        record = records.get(video_id)
        if record and record.playable and (record.playable_until or 0) >= 18:
            signal_workers(platform, signal.SIGSTOP)
            return record
        return None

    try:
        frozen = wait_for(three_chunks_play, timeout=60, what="the first chunks")
        assert frozen.status == Status.PROCESSING
        # The card offers Play once three segments are out; nothing autoplays.
        card.locator('[data-action="play"]').click(timeout=30_000)
        player = page.locator(f"{PLAYER} video")
        page.wait_for_function(
            "video => video.currentTime > 0",
            arg=player.element_handle(),
            timeout=30_000,
        )
        # Count stalls from here on, and play fast through two boundaries.
        player.evaluate(
            """video => {
                window.stalls = 0
                video.addEventListener('waiting', () => { window.stalls += 1 })
                video.playbackRate = 4
            }"""
        )
        page.wait_for_function(
            "video => video.currentTime > 13",
            arg=player.element_handle(),
            timeout=30_000,
        )
        assert page.evaluate("window.stalls") == 0
        assert not page.locator(f"{PLAYER} .player-error").is_visible()
        assert records.get(video_id).status == Status.PROCESSING
    finally:
        signal_workers(platform, signal.SIGCONT)

    ready = wait_for(
        lambda: (r := records.get(video_id)) and r.status == Status.READY and r,
        timeout=120,
        what="READY",
    )
    owners = {
        str(entry["owner"]).split(":")[1]
        for name, entry in ready.tasks.items()
        if name.startswith("chunk-")
    }
    assert len(owners) >= 2, "several worker processes encoded its chunks"
    assert ready.chunks_done == len(ready.plan["chunks"]) == 8
    master = requests.get(f"{platform.playback_url}/{ready.playback}", timeout=10)
    playlist = requests.get(
        f"{platform.playback_url}/videos/{video_id}/180p/index.m3u8", timeout=10
    )
    assert master.ok
    assert playlist.text.rstrip().endswith("#EXT-X-ENDLIST")


def test_a_job_whose_worker_dies_every_time_fails_its_video_and_delete_works(
    platform, records
):
    token = platform.mint_token()
    replaced = platform.worker_pool.replaced
    # One 6 s run of a 1080p ladder: long enough to be killed in.
    video_id = post_upload(platform, token, clip(size="1920x1080", seconds=6))
    for attempt in (1, 2, 3):

        def claimed(attempt=attempt):
            record = records.get(video_id)
            entry = (record.tasks or {}).get("video") if record else None
            if entry and int(entry["attempts"]) == attempt:
                return holder_pid(record, "video")
            return None

        pid = wait_for(claimed, timeout=30, what=f"delivery {attempt}")
        os.killpg(pid, signal.SIGKILL)

    failed = wait_for(
        lambda: (r := records.get(video_id)) and r.status == Status.FAILED and r,
        timeout=60,
        what="FAILED",
    )
    assert failed.error.startswith("the transcode was started 3 times and never")
    public = requests.get(
        f"{platform.api_url}/videos/{video_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    ).json()
    assert public["status"] == "FAILED"
    assert public["retrying"] is False
    deleted = requests.delete(
        f"{platform.api_url}/videos/{video_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert deleted.status_code == 200, deleted.text
    assert records.get(video_id) is None
    # Every killed worker process was replaced.
    assert platform.worker_pool.replaced >= replaced + 3
    wait_for(
        lambda: all(p.poll() is None for p in platform.workers),
        timeout=10,
        what="three live workers",
    )
    assert len(platform.workers) == 3
