"""Decode-once ladder encode vs one ffmpeg process per rendition.

Run from the repository root: ``python bench/transcode.py``. Makes a 20 s
1080p30 clip with audio, times the worker's own single ffmpeg run (every
rung and the audio) against running each rendition in its own process,
one after another, with the same codec settings (best of three runs
each, taking turns, since background load only adds time), and compares
each rung's PSNR against the source scaled to that rung's size. The last
line is

    transcode: <ratio>x per-rendition; realtime <r>x; psnr delta <d> dB

ratio = per-rendition time / single-run time, realtime = clip length /
single-run time, d = the largest per-rung PSNR difference between the two.
Before it, the bench prints the CPU time of one decode of the source, and
how much of the baseline's CPU time its repeated decodes take.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "containers" / "ffmpeg")]

from vod.ladder import DEFAULT_LADDER, Plan, Variant  # noqa: E402
from vod.settings import WorkerSettings  # noqa: E402
from worker.encode import (  # noqa: E402
    VARIANT_PLAYLIST,
    audio_command,
    single_command,
)
from worker.hls import MediaPlaylist  # noqa: E402
from worker.jobs import plan_transcode  # noqa: E402
from worker.probe import describe, run_ffprobe  # noqa: E402

CLIP_SECONDS = 20
REPEATS = 3
_PSNR = re.compile(r"PSNR .*average:([0-9.]+|inf)")


def make_clip(path: Path) -> None:
    """A camera-like upload: 1080p30 H.264 at a high quality, AAC audio."""
    run(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=1920x1080:rate=30:duration={CLIP_SECONDS}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={CLIP_SECONDS}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        str(path),
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        check=True,
        capture_output=True,
        text=True,
    )


@dataclasses.dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def run_once(commands: list[list[str]]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def timed(runs: dict[str, list[list[str]]]) -> dict[str, Timing]:
    """Each named run's best of ``REPEATS``: background load only ever adds
    time. The runs take turns, so that a slow spell of the machine falls on
    all of them rather than on one."""
    best: dict[str, Timing] = {}
    for _ in range(REPEATS):
        for name, commands in runs.items():
            timing = run_once(commands)
            if name not in best or timing.wall < best[name].wall:
                best[name] = timing
    return best


def decode_only_command(source: Path, video_stream: int) -> list[str]:
    """The source's video decoded and thrown away: what every per-rendition
    process pays again."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-i",
        str(source),
        "-map",
        f"0:v:{video_stream}",
        "-f",
        "null",
        "-",
    ]


def joined_rendition(folder: Path) -> Path:
    """A rung's init and media segments as one fragmented MP4."""
    playlist = MediaPlaylist.parse((folder / VARIANT_PLAYLIST).read_text())
    assert playlist.init is not None
    parts = [playlist.init, *(uri for uri, _ in playlist.segments)]
    joined = folder / "joined.mp4"
    joined.write_bytes(b"".join((folder / part).read_bytes() for part in parts))
    return joined


def psnr(rendition: Path, source: Path, plan: Plan, variant: Variant) -> float:
    graph = (
        "[0:v]setpts=PTS-STARTPTS[main];"
        f"[1:v]fps={plan.frame_rate},format=yuv420p,"
        f"scale={variant.width}:{variant.height},setpts=PTS-STARTPTS[ref];"
        "[main][ref]psnr"
    )
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-i",
            str(rendition),
            "-i",
            str(source),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    match = _PSNR.search(result.stderr)
    if match is None:
        raise RuntimeError(f"no PSNR in ffmpeg's output:\n{result.stderr[-2000:]}")
    return float(match.group(1))


@dataclasses.dataclass(frozen=True)
class Result:
    timing: Timing
    psnr: dict[str, float]


def main() -> None:
    preset = WorkerSettings.x264_preset
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as scratch:
        work = Path(scratch)
        source = work / "source.mp4"
        make_clip(source)
        media = describe(run_ffprobe(source))

        single_dir = work / "single"
        single_dir.mkdir()
        whole = plan_transcode(
            media,
            ladder=DEFAULT_LADDER,
            chunk_seconds=600,
            preset=preset,
            max_audio_tracks=WorkerSettings.max_audio_tracks,
            loudness=WorkerSettings.loudness,
        )
        plan = whole.ladder

        baseline_dir = work / "per-rendition"
        baseline: list[list[str]] = []
        for variant in plan.variants:
            alone = dataclasses.replace(whole, variants=(variant,), has_audio=False)
            baseline.append(
                single_command(str(source), alone, baseline_dir / variant.name)
            )
        if plan.has_audio:
            baseline.append(audio_command(str(source), whole, baseline_dir))
        timings = timed(
            {
                "single": [single_command(str(source), whole, single_dir)],
                "baseline": baseline,
                "decode": [decode_only_command(source, media.video_stream)],
            }
        )
        single_timing, baseline_timing = timings["single"], timings["baseline"]
        decode_timing = timings["decode"]

        single = Result(
            single_timing,
            {
                v.name: psnr(joined_rendition(single_dir / v.name), source, plan, v)
                for v in plan.variants
            },
        )
        per_rendition = Result(
            baseline_timing,
            {
                v.name: psnr(
                    joined_rendition(baseline_dir / v.name / v.name), source, plan, v
                )
                for v in plan.variants
            },
        )

    for variant in plan.variants:
        print(
            f"{variant.name:>6} {variant.width}x{variant.height}: "
            f"psnr single {single.psnr[variant.name]:.3f} dB, "
            f"per-rendition {per_rendition.psnr[variant.name]:.3f} dB"
        )
    for label, result in (
        ("single run", single),
        ("per-rendition runs", per_rendition),
    ):
        print(
            f"{label}: {result.timing.wall:.2f} s wall, "
            f"{result.timing.cpu:.2f} s CPU (preset {preset}, best of {REPEATS})"
        )
    # What decoding once saves outright: the baseline's repeated decodes. The
    # encoders' work is the same in both runs and is most of the rest.
    repeated = (len(plan.variants) - 1) * decode_timing.cpu
    print(
        f"one decode of the source: {decode_timing.cpu:.2f} s CPU; the baseline's "
        f"{len(plan.variants) - 1} repeated decodes are {repeated:.2f} s of its "
        f"{per_rendition.timing.cpu:.2f} s CPU "
        f"({repeated / per_rendition.timing.cpu:.0%})"
    )
    ratio = per_rendition.timing.wall / single.timing.wall
    realtime = CLIP_SECONDS / single.timing.wall
    delta = max(abs(single.psnr[n] - per_rendition.psnr[n]) for n in single.psnr)
    print(
        f"transcode: {ratio:.2f}x per-rendition; realtime {realtime:.2f}x; "
        f"psnr delta {delta:.3f} dB"
    )


if __name__ == "__main__":
    main()
