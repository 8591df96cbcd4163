"""The single ffmpeg command, its progress reading, and real encodes of the
awkward sources (rotated, high frame rate, odd size) on tiny clips."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import pytest

from tests.worker_support import FAST_PRESET, SMALL_LADDER, clip, probe_json
from vod.ladder import Plan, Rung, Variant, plan_ladder
from worker.encode import (
    ProgressThrottle,
    Thumbnails,
    ffmpeg_command,
    parse_position,
    run_encode,
    var_stream_map,
)
from worker.errors import Interrupted, Unprocessable
from worker.probe import describe, run_ffprobe
from worker.thumbnails import plan_sprite

PLAN = Plan(
    variants=(
        Variant("720p", 1280, 720, 3_000_000),
        Variant("360p", 640, 360, 800_000),
    ),
    frame_rate=Fraction(30000, 1001),
    has_audio=True,
)


def option_values(args, option):
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


def test_command_decodes_once_and_scales_per_rung(tmp_path):
    args = ffmpeg_command(
        tmp_path / "in.mp4", PLAN, tmp_path, preset="veryfast", video_stream=1
    )
    assert args.count("-i") == 1
    graph = option_values(args, "-filter_complex")[0]
    assert graph.startswith("[0:v:1]fps=30000/1001,format=yuv420p,split=2[s0][s1];")
    assert "[s0]scale=1280:720,setsar=1[v0]" in graph
    assert "[s1]scale=640:360,setsar=1[v1]" in graph
    assert option_values(args, "-map") == ["[v0]", "[v1]", "0:a:0"]


def test_every_rung_gets_the_same_closed_two_second_gop(tmp_path):
    args = ffmpeg_command(tmp_path / "in.mp4", PLAN, tmp_path, preset="veryfast")
    for index, variant in enumerate(PLAN.variants):
        stream = f"v:{index}"
        assert option_values(args, f"-g:{stream}") == ["60"]
        assert option_values(args, f"-keyint_min:{stream}") == ["60"]
        assert option_values(args, f"-sc_threshold:{stream}") == ["0"]
        assert option_values(args, f"-flags:{stream}") == ["+cgop"]
        assert option_values(args, f"-force_key_frames:{stream}") == [
            "expr:gte(t,n_forced*2)"
        ]
        assert option_values(args, f"-crf:{stream}") == ["21"]
        assert option_values(args, f"-maxrate:{stream}") == [str(variant.max_bitrate)]
        assert option_values(args, f"-bufsize:{stream}") == [
            str(2 * variant.max_bitrate)
        ]
        assert option_values(args, f"-preset:{stream}") == ["veryfast"]


def test_hls_output_is_fmp4_six_second_segments_with_a_master(tmp_path):
    args = ffmpeg_command(tmp_path / "in.mp4", PLAN, tmp_path, preset="veryfast")
    assert option_values(args, "-hls_segment_type") == ["fmp4"]
    assert option_values(args, "-hls_time") == ["6"]
    assert option_values(args, "-hls_playlist_type") == ["vod"]
    assert option_values(args, "-master_pl_name") == ["master.m3u8"]
    assert option_values(args, "-var_stream_map") == [
        "a:0,agroup:audio,name:audio "
        "v:0,agroup:audio,name:720p "
        "v:1,agroup:audio,name:360p"
    ]
    assert option_values(args, "-c:a") == ["aac"]
    assert option_values(args, "-ac") == ["2"]


def test_without_audio_variants_are_video_only(tmp_path):
    silent = Plan(PLAN.variants, PLAN.frame_rate, has_audio=False)
    assert var_stream_map(silent) == "v:0,name:720p v:1,name:360p"
    args = ffmpeg_command(tmp_path / "in.mp4", silent, tmp_path, preset="veryfast")
    assert "0:a:0" not in args
    assert "-c:a" not in args


def test_thumbnails_are_two_more_branches_of_the_same_graph(tmp_path):
    thumbnails = Thumbnails(plan_sprite(30, 1280, 720), 7.5, 1280, 720)
    args = ffmpeg_command(
        tmp_path / "in.mp4", PLAN, tmp_path, preset="veryfast", thumbnails=thumbnails
    )
    graph = option_values(args, "-filter_complex")[0]
    assert "split=4[s0][s1][s2][s3]" in graph
    assert "[s2]fps=1/2:eof_action=pass,scale=160:90,tile=10x2[sprite]" in graph
    assert (
        "[s3]trim=start=7.5,trim=end_frame=1,scale=1280:720,setsar=1[poster]" in graph
    )
    assert args[-1] == str(tmp_path / "poster.jpg")


def test_parse_position_reads_out_time_us_only():
    assert parse_position("out_time_us=4032000\n") == 4.032
    assert parse_position("out_time_us=N/A") is None
    assert parse_position("out_time_ms=4032000") is None
    assert parse_position("progress=continue") is None


def test_progress_throttle_reports_growth_at_most_once_per_interval():
    throttle = ProgressThrottle(duration=10.0, interval=5)
    assert throttle.update(1.0, now=100.0) == 10
    assert throttle.update(2.0, now=101.0) is None
    assert throttle.update(6.0, now=105.0) == 60
    assert throttle.update(6.0, now=111.0) is None
    assert throttle.update(10.0, now=120.0) == 99


def encode_real(source, out_dir, *, ladder=SMALL_LADDER, cancel=None, on_position=None):
    media = describe(run_ffprobe(source))
    plan = plan_ladder(media.source, ladder)
    command = ffmpeg_command(source, plan, out_dir, preset=FAST_PRESET)
    run_encode(
        command,
        source=source,
        log_path=out_dir.parent / "ffmpeg.log",
        cancel=cancel or threading.Event(),
        on_position=on_position or (lambda _: None),
    )
    return plan


def rung_stream(out_dir, name):
    """The rung's init segment and media segments as one fMP4 file."""
    folder = out_dir / name
    joined = out_dir / f"{name}.mp4"
    parts = sorted(folder.glob("init*.mp4")) + sorted(folder.glob("*.m4s"))
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    return probe_json(joined, "-show_streams", "-count_packets")["streams"][0]


def test_rotated_clip_is_encoded_upright(tmp_path):
    out = tmp_path / "out"
    plan = encode_real(clip(size="320x180", seconds=1, rotate=90, audio=False), out)
    stream = rung_stream(out, plan.variants[0].name)
    assert (stream["width"], stream["height"]) == (144, 256)
    assert not stream.get("side_data_list")


def test_high_frame_rate_clip_is_encoded_at_half_rate(tmp_path):
    out = tmp_path / "out"
    plan = encode_real(clip(size="160x90", rate="120", seconds=1, audio=False), out)
    stream = rung_stream(out, plan.variants[0].name)
    assert stream["avg_frame_rate"] == "60/1"
    assert int(stream["nb_read_packets"]) == 60


def test_odd_sized_clip_is_encoded_at_even_planned_sizes(tmp_path):
    out = tmp_path / "out"
    odd = clip(size="425x239", seconds=1, audio=False, pix_fmt="yuv444p")
    plan = encode_real(odd, out, ladder=(Rung("360p", 360, 800),))
    assert [(v.width, v.height) for v in plan.variants] == [(424, 238)]
    stream = rung_stream(out, "238p")
    assert (stream["width"], stream["height"]) == (424, 238)


def test_progress_positions_grow_to_the_duration(tmp_path):
    positions: list[float] = []
    encode_real(clip(seconds=3), tmp_path / "out", on_position=positions.append)
    assert positions == sorted(positions)
    assert positions[-1] == pytest.approx(3.0, abs=0.1)


def test_cancel_kills_ffmpeg_and_interrupts(tmp_path):
    cancel = threading.Event()
    started = time.monotonic()

    def cancel_at_first_progress(_):
        cancel.set()

    with pytest.raises(Interrupted):
        encode_real(
            clip(size="1280x720", seconds=8),
            tmp_path / "out",
            ladder=SMALL_LADDER,
            cancel=cancel,
            on_position=cancel_at_first_progress,
        )
    assert time.monotonic() - started < 5


def test_a_failing_callback_stops_ffmpeg_and_propagates(tmp_path):
    def fail(_):
        raise LookupError("record gone")

    with pytest.raises(LookupError):
        encode_real(clip(seconds=3), tmp_path / "out", on_position=fail)


def test_ffmpeg_failure_is_unprocessable_with_its_reason(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(Unprocessable, match="could not be transcoded") as raised:
        run_encode(
            ffmpeg_command(junk, PLAN, tmp_path / "out", preset=FAST_PRESET),
            source=junk,
            log_path=tmp_path / "ffmpeg.log",
            cancel=threading.Event(),
            on_position=lambda _: None,
        )
    assert str(junk) not in raised.value.reason
