"""Chunked against one-run transcoding of a long source: the CPU the chunks
cost extra, how long a 60-minute source takes on 1 and on 20 tasks, how soon
an upload plays in the local run, and what a source minute costs on Fargate
against MediaConvert.

Run from the repository root: ``python bench/parallel.py [--seconds 240]
[--rounds 2]``. It makes a camera-like 1080p30 H.264 source with AAC audio
(a keyframe every 2 s, the index at the front), then:

- encodes it with the worker's own commands, one ffmpeg run at a time: the
  one-run encode (``single_command``: every rung and the audio) and the
  chunked encode (every ``chunk_command`` of the 60 s chunk plan, then
  ``audio_command``), taking turns for ``--rounds`` rounds; each figure is
  the least of the rounds, since other work on the machine only adds to
  it. Counted: ffmpeg's CPU time (user + system, from ``RUSAGE_CHILDREN``)
  and the CPU time of making its output the published renditions
  (``collect``; ``collect_chunk``, which drops the pre-roll and rebases the
  fragments). Not counted, as both paths do the same work: the poster and
  thumbnails, the PSNR scoring (``worker.quality``: the same GOPs of the
  video, whichever task scores them), uploads, the record. Both top rungs
  must have every frame of the source, in the same segments of the same
  durations;
- runs the platform locally from a freshly synthesized app (its 3 workers
  on this machine, the template's settings), uploads the source with the
  ``vod`` CLI, and polls ``GET /videos/{id}`` every 0.1 s from the moment
  the upload command returns until the record says ``playable``, then
  until READY; the workers' logs tell what took the time;
- projects a 60-minute source's time to READY from measured chunk times:
  the video task (planning) and the stitch from the local run; the first
  chunk, a full 60 s chunk (the median of the middle ones) and the audio
  (scaled to 60 minutes) each encoded alone, i.e. on one worker of this
  2-core machine, as on one 2-vCPU task. The jobs are queued in the
  worker's order and each is taken by the first free task. Task start-up
  is excluded. With a task each, the first chunk and the audio also give
  when a 60-minute source would first play;
- prices one source minute: on Fargate, the default task (2 vCPU, 4 GB) at
  the x86_64 on-demand list price, kept fully busy, so that its task seconds
  are the chunked encode's CPU seconds / 2; on MediaConvert Basic, the
  normalized minutes of the rungs the ladder gives this source.

The last line is (on one line)

    parallel: cpu overhead <x>x; 60-min source READY in <m> min on 20 tasks
    (1 task: <M> min); first playable after <s> s; cost <c>x below MediaConvert

with x = chunked CPU / one-run CPU, m and M the projection, s the seconds
from upload complete to ``playable: true`` in the local run, and c =
MediaConvert's price / Fargate's. Goals on this 2-core machine: x <= 1.10,
m <= 6, s <= 20, c >= 15.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "containers" / "ffmpeg")]

import requests  # noqa: E402

from local.demo import upload_with_cli  # noqa: E402
from local.runner import LocalPlatform  # noqa: E402
from tests.conftest import cdk_json_context, synthesize  # noqa: E402
from vod.costs import (  # noqa: E402
    MEDIACONVERT_BASIC_USD_PER_MINUTE,
    FargatePrices,
    Output,
    fargate_cost,
    mediaconvert_cost,
)
from vod.jobs import AUDIO_TASK, VIDEO_TASK, chunk_task  # noqa: E402
from vod.ladder import AUDIO_NAME, DEFAULT_LADDER, SEGMENT_SECONDS  # noqa: E402
from vod.model import Status  # noqa: E402
from vod.plan import (  # noqa: E402
    GOPS_PER_SEGMENT,
    Chunk,
    Mode,
    TranscodePlan,
    plan_chunks,
    segment_frames,
)
from vod.settings import WorkerSettings  # noqa: E402
from worker.encode import (  # noqa: E402
    audio_command,
    chunk_command,
    preroll_frames,
    run_encode,
    single_command,
)
from worker.jobs import AUDIO_PUBLISH_SECONDS, plan_transcode  # noqa: E402
from worker.probe import describe, run_ffprobe  # noqa: E402
from worker.renditions import Rendition, collect, collect_chunk  # noqa: E402
from worker.thumbnails import join_rendition, plan_sprite  # noqa: E402

MIN_SECONDS = 240
PROJECTED_SECONDS = 3600
PROJECTED_TASKS = 20
ARCHITECTURE = "x86_64"
FIRST_PLAYABLE_GOAL_SECONDS = 20
POLL_SECONDS = 0.1
PLAYABLE_TIMEOUT_SECONDS = 600
READY_TIMEOUT_SECONDS = 3600
#: The workers' log events that end a task.
_TASK_DONE_EVENTS = ("video.fanned_out", "chunk.finished", "audio.finished")


def make_source(path: Path, seconds: int) -> None:
    """A camera-like upload: 1080p30 H.264 at a high quality with a keyframe
    every 2 s, AAC audio, the index at the front."""
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "18",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )


# --- the encodes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """One ffmpeg run and the collecting of its output."""

    wall: float
    ffmpeg_cpu: float
    collect_cpu: float

    @property
    def cpu(self) -> float:
        return self.ffmpeg_cpu + self.collect_cpu


def encode(command: list[str], log_path: Path) -> Run:
    """``command`` run as the worker runs it; the caller collects."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run_encode(
        command,
        log_path=log_path,
        cancel=threading.Event(),
        on_position=lambda _seconds: None,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, 0.0)


def collected(
    run: Run, collect_all: Callable[[], list[Rendition]]
) -> tuple[Run, list[Rendition]]:
    started, began = time.process_time(), time.perf_counter()
    renditions = collect_all()
    cpu = time.process_time() - started
    wall = time.perf_counter() - began
    return dataclasses.replace(run, wall=run.wall + wall, collect_cpu=cpu), renditions


@dataclasses.dataclass(frozen=True)
class OneRun:
    run: Run
    top: Rendition


def encode_one_run(source: Path, plan: TranscodePlan, work: Path) -> OneRun:
    out = work / "one-run"
    out.mkdir()
    run = encode(single_command(str(source), plan, out), work / "one-run.log")
    names = [v.name for v in plan.variants] + ([AUDIO_NAME] if plan.has_audio else [])
    run, renditions = collected(
        run, lambda: [collect(out, n, video=n != AUDIO_NAME) for n in names]
    )
    return OneRun(run, renditions[0])


@dataclasses.dataclass(frozen=True)
class Chunked:
    chunks: list[tuple[Chunk, Run]]
    audio: Run
    #: The top rung of each chunk, in order.
    top: list[Rendition]

    @property
    def cpu(self) -> float:
        return sum(run.cpu for _, run in self.chunks) + self.audio.cpu

    @property
    def wall(self) -> float:
        return sum(run.wall for _, run in self.chunks) + self.audio.wall

    @property
    def ffmpeg_cpu(self) -> float:
        return sum(run.ffmpeg_cpu for _, run in self.chunks) + self.audio.ffmpeg_cpu

    @property
    def collect_cpu(self) -> float:
        return sum(run.collect_cpu for _, run in self.chunks) + self.audio.collect_cpu


def encode_chunked(source: Path, plan: TranscodePlan, work: Path) -> Chunked:
    runs: list[tuple[Chunk, Run]] = []
    tops: list[Rendition] = []
    for chunk in plan.chunks:
        out = work / f"chunk-{chunk.index}"
        out.mkdir()
        run = encode(
            chunk_command(str(source), plan, chunk, out),
            work / f"chunk-{chunk.index}.log",
        )

        def collect_all(out: Path = out, chunk: Chunk = chunk) -> list[Rendition]:
            return [
                collect_chunk(
                    out,
                    v.name,
                    first_segment=chunk.first_segment,
                    first_frame=chunk.first_frame,
                    frame_rate=plan.frame_rate,
                    preroll_gops=preroll_frames(plan, chunk) // plan.gop_frames,
                    gops_per_segment=GOPS_PER_SEGMENT,
                )
                for v in plan.variants
            ]

        run, rungs = collected(run, collect_all)
        runs.append((chunk, run))
        tops.append(rungs[0])
    out = work / "audio"
    out.mkdir()
    audio = encode(audio_command(str(source), plan, out), work / "audio.log")
    audio, _ = collected(audio, lambda: [collect(out, AUDIO_NAME, video=False)])
    return Chunked(runs, audio, tops)


@dataclasses.dataclass(frozen=True)
class Alone:
    """Wall times of the chunked encode's runs, each on its own: the least
    over the rounds, the one least slowed by other work on the machine."""

    chunks: dict[int, float]
    audio: float

    @classmethod
    def of(cls, rounds: Sequence[Chunked]) -> Alone:
        return cls(
            chunks={
                chunk.index: min(r.chunks[chunk.index][1].wall for r in rounds)
                for chunk, _ in rounds[0].chunks
            },
            audio=min(r.audio.wall for r in rounds),
        )

    def by_task(self) -> dict[str, float]:
        return {
            **{chunk_task(index): wall for index, wall in self.chunks.items()},
            AUDIO_TASK: self.audio,
        }


def frame_count(init: Path, segments: Sequence[Path], joined: Path) -> int:
    """Video frames (packets) of a rendition's init and segments."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(join_rendition(init, segments, joined)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(result.stdout.strip())


def check_top_rung(
    one_run: Rendition, chunks: list[Rendition], frames: int, work: Path
) -> str:
    """Both top rungs must have the source's ``frames``, cut into the same
    segments; raises SystemExit when they do not."""
    expected = frame_count(
        one_run.folder / one_run.init, one_run.paths(), work / "one-run-top.mp4"
    )
    if expected != frames:
        raise SystemExit(f"the one-run top rung has {expected} frames, not {frames}")
    got = sum(
        frame_count(c.folder / c.init, c.paths(), work / f"chunk-top-{i}.mp4")
        for i, c in enumerate(chunks)
    )
    segments = [segment for c in chunks for segment in c.segments]
    names = [name for name, _ in segments]
    if got != expected or names != [name for name, _ in one_run.segments]:
        raise SystemExit(
            f"the chunked top rung differs from the one-run encode: {got} frames "
            f"in {len(names)} segments, against {expected} in "
            f"{len(one_run.segments)}"
        )
    worst = max(
        abs(a - b) for (_, a), (_, b) in zip(segments, one_run.segments, strict=True)
    )
    if worst > 0.001:
        raise SystemExit(f"segment durations differ by up to {worst:.3f} s")
    return (
        f"top rung check: {expected} frames in {len(names)} segments in both "
        f"encodes; names equal, durations within {worst * 1000:.1f} ms"
    )


# --- the local run -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
    epoch: float
    worker: str
    name: str
    fields: dict[str, Any]

    @property
    def task(self) -> str | None:
        """The task the event starts or ends."""
        if self.name == "task.claimed":
            return str(self.fields["task"])
        if self.name == "chunk.finished":
            return chunk_task(int(self.fields["chunk"]))
        return {"video.fanned_out": VIDEO_TASK, "audio.finished": AUDIO_TASK}.get(
            self.name
        )


@dataclasses.dataclass(frozen=True)
class LocalRun:
    workers: int
    first_playable: float
    #: The record when it first said playable, and at READY.
    playable: dict[str, Any]
    ready: dict[str, Any]
    #: When the upload command returned (epoch seconds).
    uploaded: float
    #: The workers' log events about the video, in time order.
    events: list[Event]

    def timeline(self) -> str:
        """What the workers did until the video was playable, in seconds
        after upload complete."""
        lines = []
        for event in self.events:
            at = f"{event.epoch - self.uploaded:.1f}"
            if event.name == "task.claimed":
                lines.append(f"{at} {event.task} claimed ({event.worker})")
            elif event.name in _TASK_DONE_EVENTS:
                lines.append(f"{at} {event.task or event.name} done")
            elif event.name == "video.playable":
                lines.append(f"{at} playable")
                break
        return "; ".join(lines)

    def task_seconds(self) -> dict[str, float]:
        """Claimed to done, for every task claimed before the video was
        first playable."""
        claimed: dict[str, float] = {}
        done: dict[str, float] = {}
        playable = min(
            (e.epoch for e in self.events if e.name == "video.playable"),
            default=math.inf,
        )
        for event in self.events:
            task = event.task
            if task is None:
                continue
            if event.name == "task.claimed":
                if event.epoch <= playable:
                    claimed.setdefault(task, event.epoch)
            else:
                done[task] = event.epoch
        return {task: done[task] - at for task, at in claimed.items() if task in done}

    @property
    def planning(self) -> float:
        """The video task: claimed, probed, planned, fanned out."""
        return self.task_seconds()[VIDEO_TASK]

    @property
    def stitch(self) -> float:
        """From the end of the last task to READY, on the worker that
        stitched."""
        ready = next(e for e in self.events if e.name == "job.ready")
        return ready.epoch - max(
            e.epoch
            for e in self.events
            if e.worker == ready.worker
            and e.epoch <= ready.epoch
            and e.name in _TASK_DONE_EVENTS
        )


def local_run(source: Path, work: Path) -> LocalRun:
    """``source`` uploaded with the ``vod`` CLI to the platform run locally
    from a freshly synthesized app, with the template's settings."""
    synth = synthesize(work / "cdk.out")
    run_dir = work / "run"
    with LocalPlatform(synth.outdir, web_port=0, run_dir=run_dir) as platform:
        token = platform.mint_token()
        video_id = upload_with_cli(source, platform.api_url, token, work / "state")
        uploaded, uploaded_epoch = time.monotonic(), time.time()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        while True:
            response = http.get(f"{platform.api_url}/videos/{video_id}", timeout=30)
            response.raise_for_status()
            playable = response.json()
            if playable["playable"]:
                first_playable = time.monotonic() - uploaded
                break
            if playable["status"] == Status.FAILED:
                raise SystemExit(f"video {video_id} FAILED: {playable['error']}")
            if time.monotonic() - uploaded > PLAYABLE_TIMEOUT_SECONDS:
                raise SystemExit(f"video {video_id} is not playable: {playable}")
            time.sleep(POLL_SECONDS)
        # Polled less often from here: the API's functions share the cores.
        ready = platform.wait_for_video(
            video_id, token, timeout=READY_TIMEOUT_SECONDS, poll_seconds=1
        )
        events = worker_events(run_dir / "logs", video_id)
        workers = len(platform.workers)
    return LocalRun(workers, first_playable, playable, ready, uploaded_epoch, events)


def worker_events(log_dir: Path, video_id: str) -> list[Event]:
    """The workers' log events about ``video_id``, in time order."""
    events = []
    for log in sorted(log_dir.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or entry.get("videoId") != video_id:
                continue
            epoch = datetime.fromisoformat(entry["time"]).timestamp()
            events.append(Event(epoch, log.stem, entry["event"], entry))
    return sorted(events, key=lambda e: e.epoch)


def full_frames(plan: TranscodePlan) -> int:
    """The frames of a full-length chunk (neither the first nor the last)."""
    segments = WorkerSettings.chunk_seconds // SEGMENT_SECONDS
    return segments * segment_frames(plan.frame_rate)


# --- the projection ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    task: str
    seconds: float


def schedule(tasks: int, start: float, jobs: Sequence[Job]) -> tuple[float, str]:
    """When the last of ``jobs`` (in queue order) ends, and which it is, each
    job taken by the first free of ``tasks`` tasks, all free at ``start``."""
    free = [start] * tasks
    end, last = start, ""
    for job in jobs:
        begins = heapq.heappop(free)
        heapq.heappush(free, begins + job.seconds)
        if begins + job.seconds > end:
            end, last = begins + job.seconds, job.task
    return end, last


@dataclasses.dataclass(frozen=True)
class Projection:
    planning: float
    jobs: list[Job]
    stitch: float

    def ready(self, tasks: int) -> tuple[float, str]:
        """Seconds from upload complete to READY on ``tasks`` tasks, and the
        job that ends last."""
        end, last = schedule(tasks, self.planning, self.jobs)
        return end + self.stitch, last

    def first_playable(self) -> float:
        """With a task free for each of the first two jobs: once the first
        chunk is done, and the audio task has published its first seconds
        (it does so each AUDIO_PUBLISH_SECONDS while it encodes)."""
        return self.planning + self.jobs[0].seconds + AUDIO_PUBLISH_SECONDS


def project(
    plan: TranscodePlan, seconds: int, alone: Alone, local: LocalRun
) -> tuple[Projection, str]:
    """A 60-minute source's jobs in the order the video task queues them (the
    first chunk, the audio, the rest), timed as measured here: every chunk
    after the first as long as the median full chunk (the last is shorter, so
    this errs long), the audio scaled to the length, the stitch scaled to the
    thumbnails it fetches. Returns it with a line of its inputs."""
    chunk_seconds = WorkerSettings.chunk_seconds
    walls = alone.chunks
    full = [c.index for c in plan.chunks if c.frames == full_frames(plan)]
    chunk_wall = statistics.median(walls[i] for i in full)
    scale = PROJECTED_SECONDS / seconds
    audio_wall = alone.audio * scale
    chunks = plan_chunks(PROJECTED_SECONDS, plan.frame_rate, chunk_seconds)

    def thumbnails(duration: float) -> int:
        return plan_sprite(
            duration,
            plan.display_width,
            plan.display_height,
            gop_frames=plan.gop_frames,
            frame_rate=plan.frame_rate,
        ).count

    thumbs, projected_thumbs = thumbnails(seconds), thumbnails(PROJECTED_SECONDS)
    stitch = local.stitch * projected_thumbs / thumbs
    jobs = [
        Job(chunk_task(0), walls[0]),
        Job(AUDIO_TASK, audio_wall),
        *(Job(chunk_task(c.index), chunk_wall) for c in chunks[1:]),
    ]
    inputs = (
        f"{len(chunks)} chunks; planning {local.planning:.1f} s (the local run's "
        f"video task), first chunk {walls[0]:.1f} s, each later chunk "
        f"{chunk_wall:.1f} s (median of the {chunk_seconds} s chunks: "
        f"{', '.join(f'{walls[i]:.1f}' for i in full)} s), audio {audio_wall:.1f} s "
        f"({alone.audio:.1f} s x {scale:g}), stitch {stitch:.1f} s (the "
        f"local run's {local.stitch:.1f} s x {projected_thumbs}/{thumbs} "
        "thumbnails)"
    )
    return Projection(local.planning, jobs, stitch), inputs


# --- the cost of a source minute ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Costs:
    cpu_seconds: float
    #: USD per hour of the default task.
    task_hourly: float
    #: Fargate, for a fully busy task.
    fargate: dict[str, Any]
    #: Fargate, for each job's wall time on a task of its own.
    billed: dict[str, Any]
    mediaconvert: dict[str, Any]

    def below(self, fargate: dict[str, Any]) -> float:
        return float(self.mediaconvert["usd"]) / float(fargate["usd"])


def source_minute(
    plan: TranscodePlan, cpu_seconds: float, wall_seconds: float
) -> Costs:
    """One source minute whose jobs took ``cpu_seconds``, and
    ``wall_seconds`` each on its own: on Fargate, the default task at the
    list price, kept fully busy (its task seconds are the CPU seconds over
    its vCPUs) or for the jobs' wall time; on MediaConvert Basic, the same
    rungs."""
    settings = WorkerSettings
    prices = FargatePrices.list_price(ARCHITECTURE)
    memory_gib = settings.task_memory_mib / 1024
    fargate, billed = (
        fargate_cost(
            cpu_seconds=cpu_seconds,
            wall_seconds=task_seconds,
            task_vcpu=settings.task_vcpu,
            task_memory_gib=memory_gib,
            prices=prices,
        )
        for task_seconds in (cpu_seconds / settings.task_vcpu, wall_seconds)
    )
    mediaconvert = mediaconvert_cost(
        [Output(v.width, v.height, float(plan.frame_rate), 60) for v in plan.variants],
        usd_per_minute=MEDIACONVERT_BASIC_USD_PER_MINUTE,
        tier="Basic",
    )
    hourly = (
        settings.task_vcpu * prices.usd_per_vcpu_hour
        + memory_gib * prices.usd_per_gb_hour
    )
    return Costs(cpu_seconds, hourly, fargate, billed, mediaconvert)


# --- the run -----------------------------------------------------------------


def say(line: str) -> None:
    print(line, flush=True)


def load() -> str:
    """The machine's load before the run: other work slows every figure."""
    return f"load average {os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=int,
        default=MIN_SECONDS,
        help=f"source length (default and for the goals: {MIN_SECONDS})",
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = WorkerSettings
    say(f"machine: {os.cpu_count()} CPUs; {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as scratch:
        work = Path(scratch)
        source = work / "source.mp4"
        make_source(source, args.seconds)
        media = describe(run_ffprobe(source))
        chunked_plan, one_run_plan = (
            plan_transcode(
                media,
                ladder=DEFAULT_LADDER,
                chunk_seconds=chunk_seconds,
                preset=settings.x264_preset,
                max_audio_tracks=settings.max_audio_tracks,
                loudness=settings.loudness,
            )
            # A chunk longer than the source: the one-run path.
            for chunk_seconds in (
                settings.chunk_seconds,
                SEGMENT_SECONDS * (args.seconds // SEGMENT_SECONDS + 1),
            )
        )
        if one_run_plan.mode is not Mode.SINGLE or not any(
            c.frames == full_frames(chunked_plan) for c in chunked_plan.chunks
        ):
            raise SystemExit(
                f"a {args.seconds} s source has no full {settings.chunk_seconds} s "
                "chunk between its first and its last: use a longer --seconds"
            )
        say(
            f"source: {args.seconds} s of {media.source.width}x"
            f"{media.source.height} at {chunked_plan.frame_rate} fps with audio, "
            f"{source.stat().st_size / 1e6:.0f} MB; rungs "
            f"{', '.join(v.name for v in chunked_plan.variants)}; preset "
            f"{settings.x264_preset}; {len(chunked_plan.chunks)} chunks (one "
            f"segment, then {settings.chunk_seconds} s)"
        )
        if args.seconds < MIN_SECONDS:
            say(f"(shorter than the {MIN_SECONDS} s the goals are set for)")
        frames = max(1, math.ceil(media.source.duration * chunked_plan.frame_rate))

        one_runs: list[OneRun] = []
        chunkeds: list[Chunked] = []
        for number in range(args.rounds):
            folder = work / f"round-{number}"
            folder.mkdir()
            # Taking turns, so that a slow spell of the machine falls on both.
            if number % 2:
                chunkeds.append(encode_chunked(source, chunked_plan, folder))
                one_runs.append(encode_one_run(source, one_run_plan, folder))
            else:
                one_runs.append(encode_one_run(source, one_run_plan, folder))
                chunkeds.append(encode_chunked(source, chunked_plan, folder))
            check = check_top_rung(one_runs[-1].top, chunkeds[-1].top, frames, folder)
            say(
                f"round {number + 1}: one run {one_runs[-1].run.cpu:.1f} s CPU "
                f"({one_runs[-1].run.wall:.1f} s wall), chunked "
                f"{chunkeds[-1].cpu:.1f} s CPU ({chunkeds[-1].wall:.1f} s wall); "
                f"{check}"
            )
            shutil.rmtree(folder)
        one_run = min((r.run for r in one_runs), key=lambda run: run.cpu)
        chunked = min(chunkeds, key=lambda c: c.cpu)
        alone = Alone.of(chunkeds)
        best = f"least of {args.rounds} round{'s' if args.rounds > 1 else ''}"
        say(
            f"one-run encode ({best}): {one_run.ffmpeg_cpu:.1f} s ffmpeg CPU + "
            f"{one_run.collect_cpu:.2f} s collect = {one_run.cpu:.1f} s CPU"
        )
        say(
            f"chunked encode, one run at a time ({best}): "
            f"{chunked.ffmpeg_cpu:.1f} s ffmpeg CPU + {chunked.collect_cpu:.2f} s "
            f"collect_chunk/collect = {chunked.cpu:.1f} s CPU"
        )
        for chunk in chunked_plan.chunks:
            say(
                f"  {chunk.describe(len(chunked_plan.chunks))}: "
                f"{alone.chunks[chunk.index]:.1f} s wall alone, CPU "
                + "/".join(f"{c.chunks[chunk.index][1].cpu:.1f}" for c in chunkeds)
                + " s"
            )
        say(
            f"  audio: {alone.audio:.1f} s wall alone, CPU "
            + "/".join(f"{c.audio.cpu:.1f}" for c in chunkeds)
            + " s"
        )
        overhead = chunked.cpu / one_run.cpu
        preroll = sum(preroll_frames(chunked_plan, c) for c in chunked_plan.chunks)
        say(
            f"cpu overhead: {overhead:.3f}x (the chunks' pre-roll is "
            f"{float(preroll / chunked_plan.frame_rate):.0f} s of the "
            f"{args.seconds} s, encoded twice)"
        )

        local = local_run(source, work)

    by_task = alone.by_task()
    say(
        f"first playable in the local run ({local.workers} workers on this "
        f"machine, the template's settings): {local.first_playable:.1f} s "
        "after the upload command returned, playable to "
        f"{local.playable['playableUntil']} s"
    )
    say(f"  worker log, s after upload complete: {local.timeline()}")
    times = local.task_seconds()
    say(
        "  task times in the local run (alone): "
        + "; ".join(
            f"{task} {seconds:.1f} s"
            + (f" ({by_task[task]:.1f} s)" if task in by_task else "")
            for task, seconds in times.items()
        )
    )
    first = chunk_task(0)
    if local.first_playable > FIRST_PLAYABLE_GOAL_SECONDS:
        say(
            f"  over the {FIRST_PLAYABLE_GOAL_SECONDS} s goal: a video plays once "
            "its first chunk and the audio's first seconds are published; here "
            f"{first} took {times[first]:.1f} s ({by_task[first]:.1f} s alone), "
            "sharing the machine with the audio and the next chunks"
        )
    ready = local.ready
    cost = ready["cost"]
    minutes = args.seconds / 60
    say(
        f"local run READY: {ready['chunks']['done']}/{ready['chunks']['total']} "
        f"chunks; cost {cost['cpuSeconds']} CPU s, {cost['wallSeconds']} task s, "
        f"${cost['usd']} = ${cost['usd'] / minutes:.5f} per source minute "
        f"({cost['basis']}; its task seconds are {local.workers} workers sharing "
        "this machine)"
    )

    projection, inputs = project(chunked_plan, args.seconds, alone, local)
    say(
        f"projection from measured chunk times, {PROJECTED_SECONDS // 60}-minute "
        f"source, task start-up excluded: {inputs}"
    )
    # 20 tasks, the stack's default workerMaxTasks, and one.
    for tasks in (PROJECTED_TASKS, cdk_json_context()["workerMaxTasks"], 1):
        seconds, last = projection.ready(tasks)
        say(
            f"  {tasks} task(s) of {settings.task_vcpu:g} vCPU: READY after "
            f"{seconds / 60:.1f} min (the last job to end: {last})"
        )
    playable = projection.first_playable()
    say(
        "  first playable with a task each for the first chunk and the audio: "
        f"{local.planning + by_task[first] + AUDIO_PUBLISH_SECONDS:.1f} s for this "
        f"source, {playable:.1f} s for the {PROJECTED_SECONDS // 60}-minute one "
        "(the audio is published as it is encoded)"
    )

    costs = source_minute(
        chunked_plan,
        chunked.cpu / minutes,
        (sum(alone.chunks.values()) + alone.audio) / minutes,
    )
    say(
        f"Fargate, one source minute: {costs.cpu_seconds:.1f} CPU s = "
        f"{costs.fargate['wallSeconds']} s of a fully busy "
        f"{settings.task_vcpu:g} vCPU / {settings.task_memory_mib // 1024} GB task "
        f"at ${costs.task_hourly:.5f}/hour ({ARCHITECTURE} on-demand list price) "
        f"= ${costs.fargate['usd']:.5f}"
    )
    say(
        f"MediaConvert, one source minute: "
        f"{costs.mediaconvert['normalizedMinutes']:g} normalized minutes "
        f"({', '.join(v.name for v in chunked_plan.variants)}) at "
        f"${MEDIACONVERT_BASIC_USD_PER_MINUTE} (Basic) = "
        f"${costs.mediaconvert['usd']:.5f}"
    )
    say(
        "Fargate billed instead for each job's wall time alone, as on a task of "
        f"its own: {costs.billed['wallSeconds']} task s = "
        f"${costs.billed['usd']:.5f} ({costs.below(costs.billed):.1f}x below "
        "MediaConvert)"
    )
    on_many, _ = projection.ready(PROJECTED_TASKS)
    on_one, _ = projection.ready(1)
    below = costs.below(costs.fargate)
    say(
        f"parallel: cpu overhead {overhead:.2f}x; {PROJECTED_SECONDS // 60}-min "
        f"source READY in {on_many / 60:.1f} min on {PROJECTED_TASKS} tasks "
        f"(1 task: {on_one / 60:.1f} min); first playable after "
        f"{local.first_playable:.1f} s; cost {below:.1f}x below MediaConvert"
    )


if __name__ == "__main__":
    main()
