"""One job: from a job message to a READY (or FAILED) record.

The record is the job's lock and its idempotency key. A job only runs from
QUEUED or PROCESSING (a redo after a crashed worker), so a redelivered
message for a finished video is acknowledged without work. READY is written
last, after every output (master playlist last of all) is uploaded, so a
record never points at a half-written folder; a redo clears the folder first.
"""

from __future__ import annotations

import enum
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from vod.jobs import JobMessage
from vod.keys import MASTER_PLAYLIST, output_prefix
from vod.ladder import AUDIO_NAME, Plan
from vod.model import TERMINAL, Rendition, Status, Video
from vod.repository import VideoRepository
from vod.settings import WorkerSettings
from worker.encode import VARIANT_PLAYLIST, ProgressThrottle, plan_encode, run_encode
from worker.errors import Interrupted, Superseded, Unprocessable
from worker.hls import (
    AAC_LC_CODEC,
    MediaPlaylist,
    Rates,
    VariantFacts,
    avc_codec,
    finish_master,
    measure,
)
from worker.logs import event
from worker.probe import describe, run_ffprobe
from worker.storage import SourceMissing, Storage
from worker.thumbnails import POSTER_NAME, SPRITE_NAME, THUMBNAILS_NAME, webvtt

#: A file that decodes to less than this share of its declared duration is
#: cut short (an upload that stopped early, with its index up front).
MIN_DECODED_SHARE = 0.9
_RUNNABLE = frozenset({Status.QUEUED, Status.PROCESSING})
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class Outcome(enum.Enum):
    READY = "ready"
    FAILED = "failed"
    #: Nothing to do: the video is finished, gone, or owned by another job.
    SKIPPED = "skipped"
    #: The record is not queued yet; the message comes back later.
    DEFERRED = "deferred"

    @property
    def settles_message(self) -> bool:
        return self is not Outcome.DEFERRED


class Transcoder:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        repository: VideoRepository,
        storage: Storage,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._repository = repository
        self._storage = storage
        self._clock = clock

    def give_up(self, job: JobMessage, reason: str) -> None:
        """Fail the record of a job that will not be retried again."""
        self._repository.transition(
            job.video_id, Status.FAILED, fields={"error": reason}, only_from=_RUNNABLE
        )

    def process(self, job: JobMessage, cancel: threading.Event) -> Outcome:
        """Run ``job``. Raises Interrupted when ``cancel`` is set mid-job, and
        lets unexpected errors (an AWS outage) through, leaving the record in
        PROCESSING for the message's next delivery."""
        video = self._repository.get(job.video_id)
        if video is None or video.status in TERMINAL:
            event(
                "job.skipped",
                videoId=job.video_id,
                status=None if video is None else str(video.status),
            )
            return Outcome.SKIPPED
        if video.status not in _RUNNABLE:
            event("job.deferred", videoId=job.video_id, status=str(video.status))
            return Outcome.DEFERRED
        if job.bucket != self._settings.source_bucket or job.key != video.key:
            raise ValueError(
                f"job names s3://{job.bucket}/{job.key}, but video {video.id} was "
                f"uploaded to s3://{self._settings.source_bucket}/{video.key}"
            )
        started = self._repository.transition(
            video.id,
            Status.PROCESSING,
            fields={"progress": 0},
            remove=("error",),
            only_from=_RUNNABLE,
        )
        if started is None:
            return Outcome.SKIPPED
        job_dir = Path(self._settings.work_dir) / video.id
        shutil.rmtree(job_dir, ignore_errors=True)
        job_dir.mkdir(parents=True)
        try:
            self._transcode(video, job_dir, cancel)
        except Unprocessable as error:
            event("job.unprocessable", videoId=video.id, reason=error.reason)
            self._repository.transition(
                video.id,
                Status.FAILED,
                fields={"error": error.reason},
                only_from={Status.PROCESSING},
            )
            return Outcome.FAILED
        except Superseded:
            event("job.superseded", videoId=video.id)
            return Outcome.SKIPPED
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)
        return Outcome.READY

    def _transcode(self, video: Video, job_dir: Path, cancel: threading.Event) -> None:
        source = self._download(video, job_dir)
        _check(cancel)
        media = describe(run_ffprobe(source))
        duration = media.source.duration
        out_dir = job_dir / "out"
        out_dir.mkdir()
        encode = plan_encode(
            source,
            media,
            self._settings.ladder,
            out_dir,
            preset=self._settings.x264_preset,
        )
        plan = encode.plan
        display_width, display_height = media.source.display_size
        event(
            "encode.started",
            videoId=video.id,
            duration=duration,
            source=f"{display_width}x{display_height}",
            frameRate=str(plan.frame_rate),
            audio=plan.has_audio,
            variants=[
                f"{v.name}:{v.width}x{v.height}@{v.max_bitrate}" for v in plan.variants
            ],
        )
        started = self._clock()
        run_encode(
            encode.command,
            source=source,
            log_path=job_dir / "ffmpeg.log",
            cancel=cancel,
            on_position=self._progress_reporter(video.id, duration),
        )
        encoded = _encoded_seconds(out_dir, plan.variants[0].name)
        event(
            "encode.finished",
            videoId=video.id,
            seconds=round(self._clock() - started, 2),
            encoded=encoded,
        )
        if encoded < duration * MIN_DECODED_SHARE:
            raise Unprocessable(
                f"the file is truncated or corrupt: only {encoded:.1f} s of its "
                f"{duration:.1f} s could be decoded"
            )
        for image in (POSTER_NAME, SPRITE_NAME):
            if not (out_dir / image).is_file():
                raise Unprocessable(f"no frame could be decoded for the {image}")
        (out_dir / THUMBNAILS_NAME).write_text(webvtt(encode.sprite, duration))
        codecs = _finish_master(out_dir, plan)
        _check(cancel)
        prefix = output_prefix(video.id)
        bucket = self._settings.output_bucket
        cleared = self._storage.clear(bucket, prefix)
        uploaded = self._storage.upload_tree(out_dir, bucket, prefix)
        event("outputs.uploaded", videoId=video.id, files=uploaded, cleared=cleared)
        ready = self._repository.transition(
            video.id,
            Status.READY,
            fields=_ready_fields(
                prefix, duration, (display_width, display_height), plan, codecs
            ),
            remove=("error",),
            only_from={Status.PROCESSING},
        )
        if ready is None:
            raise Superseded
        event("job.ready", videoId=video.id, renditions=len(plan.variants))

    def _download(self, video: Video, job_dir: Path) -> Path:
        bucket = self._settings.source_bucket
        try:
            size = self._storage.size(bucket, video.key)
        except SourceMissing:
            raise Unprocessable("the uploaded file no longer exists") from None
        if size == 0:
            raise Unprocessable("the uploaded file is empty")
        free = shutil.disk_usage(job_dir).free
        needed = size + self._settings.disk_headroom_bytes
        if free < needed:
            raise Unprocessable(
                f"not enough disk space to transcode a {size}-byte file: "
                f"{needed} bytes needed, {free} free"
            )
        suffix = PurePosixPath(video.key).suffix
        source = job_dir / (
            "source" + (suffix.lower() if _SUFFIX.match(suffix) else "")
        )
        started = self._clock()
        self._storage.download(bucket, video.key, source)
        event(
            "source.downloaded",
            videoId=video.id,
            bytes=size,
            seconds=round(self._clock() - started, 2),
        )
        return source

    def _progress_reporter(
        self, video_id: str, duration: float
    ) -> Callable[[float], None]:
        throttle = ProgressThrottle(duration, self._settings.progress_interval_seconds)

        def report(position: float) -> None:
            percent = throttle.update(position, self._clock())
            if percent is None:
                return
            updated = self._repository.transition(
                video_id,
                Status.PROCESSING,
                fields={"progress": percent},
                only_from={Status.PROCESSING},
            )
            if updated is None:
                raise Superseded

        return report


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise Interrupted("stop requested")


def _encoded_seconds(out_dir: Path, rung: str) -> float:
    """How much video the rung's playlist holds: what could be decoded."""
    playlist = out_dir / rung / VARIANT_PLAYLIST
    if not playlist.is_file():
        return 0.0
    return MediaPlaylist.parse(playlist.read_text()).duration


def _finish_master(out_dir: Path, plan: Plan) -> dict[str, str]:
    """Complete ``master.m3u8`` from the produced files; returns each rung's
    CODECS."""
    audio = Rates(0, 0)
    if plan.has_audio:
        folder = out_dir / AUDIO_NAME
        audio = measure(
            MediaPlaylist.parse((folder / VARIANT_PLAYLIST).read_text()), folder
        )
    facts = {}
    codecs = {}
    for variant in plan.variants:
        folder = out_dir / variant.name
        playlist = MediaPlaylist.parse((folder / VARIANT_PLAYLIST).read_text())
        video_codec = (
            avc_codec((folder / playlist.init).read_bytes()) if playlist.init else None
        )
        if video_codec is None:
            raise RuntimeError(f"rung {variant.name} has no H.264 init segment")
        codecs[variant.name] = (
            f"{video_codec},{AAC_LC_CODEC}" if plan.has_audio else video_codec
        )
        facts[f"{variant.name}/{VARIANT_PLAYLIST}"] = VariantFacts(
            rates=measure(playlist, folder) + audio,
            width=variant.width,
            height=variant.height,
            codecs=codecs[variant.name],
            frame_rate=float(plan.frame_rate),
        )
    master = out_dir / MASTER_PLAYLIST
    master.write_text(finish_master(master.read_text(), facts))
    return codecs


def _ready_fields(
    prefix: str,
    duration: float,
    size: tuple[int, int],
    plan: Plan,
    codecs: dict[str, str],
) -> dict[str, Any]:
    frame_rate = round(float(plan.frame_rate), 3)
    renditions = [
        Rendition(
            name=v.name,
            width=v.width,
            height=v.height,
            bitrate=v.max_bitrate,
            playlist=f"{prefix}{v.name}/{VARIANT_PLAYLIST}",
            codecs=codecs[v.name],
            frame_rate=frame_rate,
        ).to_dict()
        for v in plan.variants
    ]
    return {
        "progress": 100,
        "duration": round(duration, 3),
        "width": size[0],
        "height": size[1],
        "renditions": renditions,
        "playback": prefix + MASTER_PLAYLIST,
        "poster": prefix + POSTER_NAME,
        "sprite": prefix + SPRITE_NAME,
        "thumbnails": prefix + THUMBNAILS_NAME,
    }
