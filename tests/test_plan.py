"""The shared pure parts of chunked transcoding: chunk planning, the work
ledger's readings (retrying, dead letters), and the cost of a video."""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction

import pytest

from vod.costs import FargatePrices, Output, fargate_cost, normalized_minutes
from vod.jobs import JobMessage, TaskKind
from vod.ladder import Variant
from vod.loudness import LoudnessTarget
from vod.model import Status, Video
from vod.plan import (
    MAX_CHUNKS,
    Mode,
    TranscodePlan,
    plan_chunks,
    segment_frames,
    segmenter_seconds,
)
from vod.tasks import dead_letter_reason, ready_to_stitch, retry_state

NTSC = Fraction(30000, 1001)


def test_a_source_that_fits_in_one_chunk_is_one_run():
    (only,) = plan_chunks(60.0, Fraction(30), 60)
    assert (only.first_frame, only.frames, only.end_seconds) == (0, None, 60.0)


def test_chunks_start_on_segments_the_first_is_one_segment_the_last_takes_the_rest():
    chunks = plan_chunks(250.0, NTSC, 60)
    assert [c.first_segment for c in chunks] == [0, 1, 11, 21, 31, 41]
    assert [c.first_frame for c in chunks] == [0, 180, 1980, 3780, 5580, 7380]
    assert [c.frames for c in chunks] == [180, 1800, 1800, 1800, 1800, None]
    assert chunks[1].start_seconds == pytest.approx(6.006)
    assert chunks[-1].end_seconds == 250.0
    for before, after in itertools.pairwise(chunks):
        assert before.frames is not None
        assert before.first_frame + before.frames == after.first_frame
        assert before.end_seconds == after.start_seconds
    assert chunks[2].describe(6) == "chunk 3 of 6 (1:06-2:06)"


def test_a_very_long_source_gets_longer_chunks_not_more_than_the_cap():
    chunks = plan_chunks(24 * 3600.0, Fraction(25), 6)
    assert len(chunks) <= MAX_CHUNKS + 1
    assert all((c.frames or 0) % segment_frames(Fraction(25)) == 0 for c in chunks)


def test_bad_chunk_lengths_are_refused():
    with pytest.raises(ValueError, match="multiple of 6"):
        plan_chunks(100.0, Fraction(30), 10)


def test_the_segmenter_cuts_just_short_of_the_boundary():
    assert segmenter_seconds(Fraction(30), 180) == pytest.approx(6 - 1 / 256 / 30)


PLAN = TranscodePlan(
    mode=Mode.CHUNKED,
    duration=130.0,
    display_width=1280,
    display_height=720,
    frame_rate=NTSC,
    variants=(Variant("720p", 1280, 720, 3_000_000),),
    has_audio=True,
    video_stream=0,
    preset="veryfast",
    seekable=True,
    chunks=plan_chunks(130.0, NTSC, 60),
    source_frame_rate=NTSC,
)


def test_the_plan_round_trips_through_the_record():
    assert TranscodePlan.from_dict(PLAN.to_dict()) == PLAN
    tracks = dataclasses.replace(
        PLAN, audio_languages=("en", "fr"), loudness=LoudnessTarget(-23, -2)
    )
    assert TranscodePlan.from_dict(tracks.to_dict()) == tracks
    assert tracks.audio_tracks == ("en", "fr")
    assert dataclasses.replace(tracks, has_audio=False).audio_tracks == ()


def test_a_plan_stored_before_alternate_audio_has_its_one_track():
    stored = {**PLAN.to_dict(), "audioLanguage": "de"}
    del stored["audioLanguages"], stored["loudness"]
    plan = TranscodePlan.from_dict(stored)
    assert plan.audio_tracks == ("de",)
    assert plan.loudness is None


JOB = JobMessage("v1", "uploads", "uploads/o/v1/a.mp4")
CHUNK = JOB.for_task(TaskKind.CHUNK, 1)


def entry(**fields):
    base = {"owner": "w1", "leaseUntil": 100.0, "attempts": 1, "done": False}
    return {**base, **fields}


def test_a_dead_lettered_chunk_whose_worker_stopped_fails_the_video_saying_so():
    tasks = {"chunk-0001": entry(attempts=3)}
    reason = dead_letter_reason(CHUNK, tasks, PLAN, now=200.0)
    assert reason is not None
    assert reason.startswith("chunk 2 of 4 (0:06-1:06) was started 3 times")
    assert "killed, out of memory" in reason


def test_a_dead_letter_leaves_done_and_held_tasks_alone():
    assert (
        dead_letter_reason(CHUNK, {"chunk-0001": entry(done=True)}, PLAN, 200.0) is None
    )
    held = {"chunk-0001": entry(leaseUntil=300.0)}
    assert dead_letter_reason(CHUNK, held, PLAN, now=200.0) is None
    never = dead_letter_reason(CHUNK, {}, PLAN, now=200.0)
    assert never is not None
    assert never.startswith("chunk 2 of 4 (0:06-1:06) was never started")


def test_a_dead_letter_after_the_last_task_blames_an_unfinished_stitch():
    tasks = {f"chunk-000{n}": entry(done=True) for n in range(4)}
    tasks["audio"] = entry(done=True)
    assert ready_to_stitch(tasks, PLAN)
    tasks["stitch"] = entry(attempts=2)
    reason = dead_letter_reason(JOB.for_task(TaskKind.AUDIO), tasks, PLAN, 200.0)
    assert reason is not None
    assert reason.startswith("publishing the finished video was started 2 times")


def test_a_stalled_task_shows_as_retrying_with_its_attempts():
    tasks = {"chunk-0000": entry(done=True), "chunk-0001": entry(attempts=2)}
    assert retry_state(tasks, now=50.0).retrying is False
    state = retry_state(tasks, now=150.0)
    assert (state.retrying, state.attempts) == (True, 2)
    video = Video(
        id="v1",
        owner="o",
        status=Status.PROCESSING,
        key="uploads/o/v1/a.mp4",
        filename="a.mp4",
        content_type="video/mp4",
        created_at="t",
        updated_at="t",
        duration=130.0,
        encoded=65.0,
        tasks=tasks,
        plan=PLAN.to_dict(),
        chunks_done=1,
    )
    public = video.to_public(now=150.0)
    assert (public["retrying"], public["attempts"], public["progress"]) == (True, 2, 50)
    assert public["chunks"] == {"total": 4, "done": 1}
    assert public["playable"] is False
    assert public["playbackUrl"] is None


def test_fargate_cost_is_the_task_size_for_the_wall_time():
    cost = fargate_cost(
        cpu_seconds=5000,
        wall_seconds=3600,
        task_vcpu=2,
        task_memory_gib=4,
        prices=FargatePrices.list_price("x86_64"),
    )
    assert cost["usd"] == pytest.approx(2 * 0.04048 + 4 * 0.004445)
    assert cost["cpuSeconds"] == 5000


def test_normalized_minutes_weigh_resolution_and_frame_rate():
    outputs = [
        Output(1920, 1080, 30, 60),
        Output(640, 360, 30, 60),
        Output(1280, 720, 60, 30),
    ]
    assert normalized_minutes(outputs) == pytest.approx(2 + 1 + 2)
