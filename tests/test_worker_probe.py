"""Reading ffprobe's JSON into a Source, from synthetic probe results and
from real probes of lavfi clips, and the ladders those sources get."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction

import pytest

from tests.worker_support import SMALL_LADDER, clip
from vod.ladder import plan_ladder
from worker.errors import Unprocessable
from worker.probe import describe, run_ffprobe


def video_stream(**overrides):
    stream = {
        "codec_type": "video",
        "width": 1920,
        "height": 1080,
        "r_frame_rate": "30/1",
        "avg_frame_rate": "30/1",
        "duration": "12.5",
        "bit_rate": "4000000",
        "sample_aspect_ratio": "1:1",
        "disposition": {"attached_pic": 0},
    }
    stream.update(overrides)
    return stream


AUDIO = {"codec_type": "audio", "bit_rate": "128000"}


def probe(*streams, **fmt):
    return {"streams": list(streams), "format": {"duration": "12.5", **fmt}}


def test_describes_a_plain_landscape_source():
    media = describe(probe(video_stream(), AUDIO))
    source = media.source
    assert (source.width, source.height, source.display_size) == (
        1920,
        1080,
        (1920, 1080),
    )
    assert source.duration == 12.5
    assert source.frame_rate == Fraction(30)
    assert source.bitrate == 4_000_000
    assert source.has_audio
    assert media.video_stream == 0


def test_display_matrix_rotation_gives_portrait_display():
    rotated = video_stream(
        side_data_list=[{"side_data_type": "Display Matrix", "rotation": -90}],
        # Above every rung's cap, so that no rung is pruned.
        bit_rate="20000000",
    )
    source = describe(probe(rotated)).source
    assert source.rotation == -90
    assert source.display_size == (1080, 1920)
    assert [v.width < v.height for v in plan_ladder(source).variants] == [True] * 5


def test_legacy_rotate_tag_is_honoured():
    source = describe(probe(video_stream(tags={"rotate": "90"}))).source
    assert source.display_size == (1080, 1920)


def test_cover_art_is_not_the_video():
    cover = video_stream(width=600, height=600, disposition={"attached_pic": 1})
    media = describe(probe(cover, video_stream(width=1280, height=720)))
    assert media.video_stream == 1
    assert media.source.width == 1280


def test_container_bitrate_less_audio_when_the_stream_has_none():
    webm_video = video_stream(bit_rate=None, duration=None)
    media = describe(probe(webm_video, AUDIO, bit_rate="2128000"))
    assert media.source.bitrate == 2_000_000
    assert media.source.duration == 12.5


def test_unknown_rates_and_aspect_fall_back_safely():
    odd = video_stream(
        r_frame_rate="0/0", avg_frame_rate="N/A", sample_aspect_ratio="0:1"
    )
    source = describe(probe(odd)).source
    assert source.frame_rate == 0
    assert source.sample_aspect_ratio == 1
    assert plan_ladder(source).frame_rate == 30


@pytest.mark.parametrize(
    ("streams", "fmt", "reason"),
    [
        ([AUDIO], {}, "no video stream"),
        ([video_stream(disposition={"attached_pic": 1}), AUDIO], {}, "no video stream"),
        ([video_stream(duration="0")], {"duration": "0"}, "no duration"),
        ([video_stream(duration=None)], {"duration": "N/A"}, "no duration"),
        ([video_stream(width=0)], {}, "no picture size"),
    ],
)
def test_sources_no_ladder_fits_are_unprocessable(streams, fmt, reason):
    with pytest.raises(Unprocessable, match=reason):
        describe({"streams": streams, "format": fmt})


def test_real_probe_of_a_rotation_tagged_clip():
    media = describe(run_ffprobe(clip(size="320x180", seconds=1, rotate=90)))
    assert abs(media.source.rotation) == 90
    assert media.source.display_size == (180, 320)
    assert [
        (v.width, v.height) for v in plan_ladder(media.source, SMALL_LADDER).variants
    ] == [(144, 256)]


def test_real_probe_of_a_clip_without_audio():
    media = describe(run_ffprobe(clip(size="320x180", seconds=1, audio=False)))
    assert not media.source.has_audio
    assert not plan_ladder(media.source).has_audio


def test_real_probe_of_a_high_frame_rate_clip_halves_it():
    media = describe(
        run_ffprobe(clip(size="160x90", rate="120", seconds=1, audio=False))
    )
    assert media.source.frame_rate == 120
    assert plan_ladder(media.source).frame_rate == 60


def test_real_probe_of_an_odd_sized_clip():
    odd = clip(size="853x479", seconds=1, audio=False, pix_fmt="yuv444p")
    source = describe(run_ffprobe(odd)).source
    assert (source.width, source.height) == (853, 479)
    assert [(v.width, v.height) for v in plan_ladder(source).variants] == [
        (770, 432),
        (642, 360),
    ]


def test_real_probe_caps_bitrates_at_the_source_rate():
    source = describe(run_ffprobe(clip(size="1280x720", seconds=1, audio=False))).source
    assert source.bitrate is not None
    assert all(v.max_bitrate <= source.bitrate for v in plan_ladder(source).variants)


def test_ffprobe_failure_is_unprocessable_without_our_path(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(Unprocessable) as raised:
        run_ffprobe(text)
    assert "Invalid data" in raised.value.reason
    assert str(tmp_path) not in raised.value.reason


@pytest.mark.parametrize(
    ("size", "rate_args", "rungs"),
    [
        # A screen recording at 300 kbit/s: every rung's cap would be its rate,
        # so only the lowest rung is kept.
        ("1280x720", ["-b:v", "300k", "-maxrate", "300k", "-bufsize", "600k"], 1),
        # Noisy 1080p, far above every cap: all five stay.
        ("1920x1080", ["-vf", "noise=alls=60:allf=t", "-qp", "20"], 5),
    ],
    ids=["screen-recording-300k", "high-motion-1080p"],
)
def test_a_real_source_keeps_only_the_rungs_its_bitrate_can_tell_apart(
    tmp_path, size, rate_args, rungs
):
    path = tmp_path / "source.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration=0.3",
            "-c:v", "libx264", "-preset", "ultrafast", *rate_args,
            "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    source = describe(run_ffprobe(path)).source
    plan = plan_ladder(source)
    assert len(plan.variants) == rungs, (source.bitrate, plan.variants)
    caps = [v.max_bitrate for v in plan.variants]
    assert all(high >= 1.5 * low for high, low in itertools.pairwise(caps))
