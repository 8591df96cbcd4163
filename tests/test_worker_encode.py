"""The ffmpeg runs (one run, a chunk, the audio), their progress reading, and
real encodes of the awkward sources (rotated, high frame rate, odd size) on
tiny clips."""

from __future__ import annotations

import dataclasses
import threading
import time
from fractions import Fraction

import pytest

from tests.worker_support import FAST_PRESET, SMALL_LADDER, clip, probe_json
from vod.ladder import Rung, Variant, plan_ladder
from vod.plan import Mode, TranscodePlan, plan_chunks
from worker.encode import (
    X264_PARAMS,
    audio_command,
    chunk_command,
    parse_position,
    run_encode,
    single_command,
)
from worker.errors import Interrupted, Unprocessable
from worker.jobs import ProgressCredits
from worker.probe import describe, run_ffprobe
from worker.renditions import collect

NTSC = Fraction(30000, 1001)


def plan(*, has_audio=True, chunk_seconds=60, duration=130.0, rate=NTSC):
    return TranscodePlan(
        mode=Mode.CHUNKED,
        duration=duration,
        display_width=1280,
        display_height=720,
        frame_rate=rate,
        variants=(
            Variant("720p", 1280, 720, 3_000_000),
            Variant("360p", 640, 360, 800_000),
        ),
        has_audio=has_audio,
        video_stream=1,
        preset="veryfast",
        seekable=True,
        chunks=plan_chunks(duration, rate, chunk_seconds),
        source_frame_rate=rate,
    )


def option_values(args, option):
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


def test_one_run_decodes_once_and_scales_per_rung(tmp_path):
    args = single_command("in.mp4", plan(), tmp_path)
    assert args.count("-i") == 1
    assert "-ss" not in args
    graph = option_values(args, "-filter_complex")[0]
    assert graph.startswith("[0:v:1]fps=30000/1001,format=yuv420p,split=2[s0][s1];")
    assert "[s0]scale=1280:720,setsar=1[v0]" in graph
    assert "[s1]scale=640:360,setsar=1[v1]" in graph
    assert option_values(args, "-map") == ["[v0]", "[v1]", "0:a:0"]
    assert option_values(args, "-var_stream_map") == [
        "a:0,name:audio v:0,name:720p v:1,name:360p"
    ]
    assert option_values(args, "-c:a") == ["aac"]


def test_every_rung_gets_the_same_closed_gop_forced_on_frame_numbers(tmp_path):
    args = single_command("in.mp4", plan(), tmp_path)
    for index, variant in enumerate(plan().variants):
        stream = f"v:{index}"
        assert option_values(args, f"-g:{stream}") == ["60"]
        assert option_values(args, f"-keyint_min:{stream}") == ["60"]
        assert option_values(args, f"-sc_threshold:{stream}") == ["0"]
        assert option_values(args, f"-flags:{stream}") == ["+cgop"]
        assert option_values(args, f"-force_key_frames:{stream}") == [
            "expr:eq(mod(n,60),0)"
        ]
        assert option_values(args, f"-crf:{stream}") == ["21"]
        assert option_values(args, f"-maxrate:{stream}") == [str(variant.max_bitrate)]
        assert option_values(args, f"-bufsize:{stream}") == [
            str(2 * variant.max_bitrate)
        ]
        assert option_values(args, f"-x264-params:{stream}") == [X264_PARAMS]
        assert "stitchable=1" in X264_PARAMS


def test_one_run_cuts_six_second_segments_and_writes_no_master(tmp_path):
    args = single_command("in.mp4", plan(), tmp_path)
    assert option_values(args, "-hls_segment_type") == ["fmp4"]
    # 180 frames at 29.97 fps less 1/256 of a frame: cut on every third GOP.
    assert option_values(args, "-hls_time") == ["6.005870"]
    assert "-master_pl_name" not in args


def test_a_later_chunk_seeks_to_its_preroll_and_counts_its_frames(tmp_path):
    chunked = plan()
    chunk = chunked.chunks[2]
    assert (chunk.first_frame, chunk.frames) == (1980, 1800)
    args = chunk_command("https://example.com/src.mp4", chunked, chunk, tmp_path)
    # Pre-roll from frame 1920, entered half a frame early.
    assert option_values(args, "-ss") == [f"{(1920 - 0.5) * 1001 / 30000:.6f}"]
    assert args.index("-ss") < args.index("-i")
    assert option_values(args, "-reconnect") == ["1"]
    graph = option_values(args, "-filter_complex")[0]
    assert graph.startswith("[0:v:1]setpts=PTS-STARTPTS,fps=30000/1001,")
    assert option_values(args, "-frames:v") == ["1860"]
    assert "0:a:0" not in args
    # One segment per GOP, so the pre-roll GOP can be dropped.
    assert option_values(args, "-hls_time") == ["2.001870"]


def test_the_first_chunk_starts_like_the_one_run_and_the_last_runs_to_the_end(
    tmp_path,
):
    chunked = plan()
    first = chunk_command("src.mp4", chunked, chunked.chunks[0], tmp_path)
    assert "-ss" not in first
    assert "setpts" not in option_values(first, "-filter_complex")[0]
    assert option_values(first, "-frames:v") == ["180"]
    last = chunk_command("src.mp4", chunked, chunked.chunks[-1], tmp_path)
    assert "-frames:v" not in last
    assert "-ss" in last


def test_the_audio_job_encodes_only_the_audio(tmp_path):
    args = audio_command("src.mp4", plan(), tmp_path)
    assert option_values(args, "-map") == ["0:a:0"]
    assert "-vn" in args
    assert option_values(args, "-var_stream_map") == ["a:0,name:audio"]


def test_every_audio_track_is_its_own_rendition_through_its_filter(tmp_path):
    two = dataclasses.replace(plan(), audio_languages=("en", "fr"))
    args = single_command(
        "in.mp4", two, tmp_path, audio_filters=["loudnorm=I=-16", None]
    )
    graph = option_values(args, "-filter_complex")[0]
    assert graph.endswith("[v1];[0:a:0]loudnorm=I=-16[a0]")
    assert option_values(args, "-map") == ["[v0]", "[v1]", "[a0]", "0:a:1"]
    assert option_values(args, "-var_stream_map") == [
        "a:0,name:audio a:1,name:audio2 v:0,name:720p v:1,name:360p"
    ]
    audio = audio_command(
        "src.mp4", two, tmp_path, audio_filters=[None, "loudnorm=I=-16"]
    )
    assert option_values(audio, "-filter_complex") == ["[0:a:1]loudnorm=I=-16[a1]"]
    assert option_values(audio, "-map") == ["0:a:0", "[a1]"]
    assert option_values(audio, "-var_stream_map") == ["a:0,name:audio a:1,name:audio2"]


def test_without_audio_variants_are_video_only(tmp_path):
    args = single_command("in.mp4", plan(has_audio=False), tmp_path)
    assert "0:a:0" not in args
    assert "-c:a" not in args


def test_parse_position_reads_out_time_us_only():
    assert parse_position("out_time_us=4032000\n") == 4.032
    assert parse_position("out_time_us=N/A") is None
    assert parse_position("out_time_ms=4032000") is None
    assert parse_position("progress=continue") is None


def test_progress_credits_the_first_position_then_at_most_once_per_interval():
    credits = []
    now = [100.0]
    reporter = ProgressCredits(
        lambda credited, position: credits.append((credited, position)),
        credited=0.0,
        limit=10.0,
        interval=5,
        clock=lambda: now[0],
    )
    reporter(0.2)
    now[0] = 101.0
    reporter(2.0)
    now[0] = 105.0
    reporter(6.0)
    reporter(6.0)
    now[0] = 120.0
    reporter(12.0)
    assert credits == [(0.0, 0.2), (0.2, 6.0), (6.0, 10.0)]


def test_a_redone_task_credits_only_past_where_the_last_attempt_got():
    credits = []
    reporter = ProgressCredits(
        lambda credited, position: credits.append((credited, position)),
        credited=4.0,
        limit=10.0,
        interval=0,
        clock=time.monotonic,
    )
    for position in (1.0, 3.0, 4.0, 5.5):
        reporter(position)
    assert credits == [(4.0, 5.5)]


def encode_real(source, out_dir, *, ladder=SMALL_LADDER, cancel=None, on_position=None):
    media = describe(run_ffprobe(source))
    ladder_plan = plan_ladder(media.source, ladder)
    whole = TranscodePlan(
        mode=Mode.SINGLE,
        duration=media.source.duration,
        display_width=media.source.display_size[0],
        display_height=media.source.display_size[1],
        frame_rate=ladder_plan.frame_rate,
        variants=ladder_plan.variants,
        has_audio=ladder_plan.has_audio,
        video_stream=media.video_stream,
        preset=FAST_PRESET,
        seekable=True,
        chunks=plan_chunks(media.source.duration, ladder_plan.frame_rate, 600),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    run_encode(
        single_command(str(source), whole, out_dir),
        log_path=out_dir.parent / "ffmpeg.log",
        cancel=cancel or threading.Event(),
        on_position=on_position or (lambda _: None),
        source_label=str(source),
    )
    return whole


def rung_stream(out_dir, name):
    """The rung's init segment and media segments as one fMP4 file."""
    rendition = collect(out_dir, name, video=True)
    joined = out_dir / f"{name}.mp4"
    parts = [rendition.folder / rendition.init, *rendition.paths()]
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    return probe_json(joined, "-show_streams", "-count_packets")["streams"][0]


def test_rotated_clip_is_encoded_upright(tmp_path):
    out = tmp_path / "out"
    encoded = encode_real(clip(size="320x180", seconds=1, rotate=90, audio=False), out)
    stream = rung_stream(out, encoded.variants[0].name)
    assert (stream["width"], stream["height"]) == (144, 256)
    assert not stream.get("side_data_list")


def test_high_frame_rate_clip_is_encoded_at_half_rate(tmp_path):
    out = tmp_path / "out"
    encoded = encode_real(clip(size="160x90", rate="120", seconds=1, audio=False), out)
    stream = rung_stream(out, encoded.variants[0].name)
    assert stream["avg_frame_rate"] == "60/1"
    assert int(stream["nb_read_packets"]) == 60


def test_odd_sized_clip_is_encoded_at_even_planned_sizes(tmp_path):
    out = tmp_path / "out"
    odd = clip(size="425x239", seconds=1, audio=False, pix_fmt="yuv444p")
    encoded = encode_real(odd, out, ladder=(Rung("360p", 360, 800),))
    assert [(v.width, v.height) for v in encoded.variants] == [(424, 238)]
    stream = rung_stream(out, "238p")
    assert (stream["width"], stream["height"]) == (424, 238)


def test_progress_positions_start_early_and_grow_to_the_duration(tmp_path):
    positions: list[float] = []
    encode_real(clip(seconds=3), tmp_path / "out", on_position=positions.append)
    assert positions == sorted(positions)
    assert positions[0] < 1.5
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
            cancel=cancel,
            on_position=cancel_at_first_progress,
        )
    assert time.monotonic() - started < 5


def test_a_failing_callback_stops_ffmpeg_and_propagates(tmp_path):
    def fail(_):
        raise LookupError("record gone")

    with pytest.raises(LookupError):
        encode_real(clip(seconds=3), tmp_path / "out", on_position=fail)


def test_ffmpeg_failure_is_unprocessable_with_its_reason_and_no_url(moto, tmp_path):
    url = f"{moto.url}/no-such-bucket/key.mp4?X-Amz-Signature=secret"
    (tmp_path / "out").mkdir()
    with pytest.raises(Unprocessable, match="could not be transcoded") as raised:
        run_encode(
            audio_command(url, plan(), tmp_path / "out"),
            log_path=tmp_path / "ffmpeg.log",
            cancel=threading.Event(),
            on_position=lambda _: None,
            source_label=url,
        )
    assert "127.0.0.1" not in raised.value.reason
    assert "Signature" not in raised.value.reason
