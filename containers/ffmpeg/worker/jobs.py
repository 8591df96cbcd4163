"""Jobs: from a job message to a task done, and a video READY or FAILED.

Every task is claimed on the record before any work (``worker.ledger``), so
a task runs once however often its job is delivered, and a dead worker's
task is taken up by the next delivery once its lease runs out.

- The ``video`` task probes the source (over a presigned URL, reading only
  what ffprobe needs) and checks the limits. A source that fits in one
  chunk is downloaded and encoded in one run, published and made READY
  right there. A longer one gets a plan on the record and one job per chunk
  and one for the audio.
- A ``chunk`` task encodes its range of every rung, reading only that range
  of an indexed source; its segments are numbered and timed as the whole
  video's. It takes the sprite's thumbnails and the poster that fall in its
  range from its own rungs.
- The ``audio`` task encodes the whole source's audio tracks once.
- Every audio track is loudness-normalized in two passes (``worker.loudness``):
  an audio-only run measures the source's tracks just before their encode
  (in the one run, or inside the audio task, which does not hold up the
  first chunk), and the encoded renditions are measured for the record.
- Whoever finishes a task extends the growing playlists, so the start of the
  video plays while the rest is encoded; whoever finishes the last one
  stitches: final playlists, the sprite, then READY.

READY is written last, after every output it points at is in place, and
only by the task's holder; nothing under a video's folder is ever deleted
by a worker but its scratch thumbnails, after READY.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from vod.costs import FargatePrices, fargate_cost
from vod.jobs import (
    AUDIO_TASK,
    STITCH_TASK,
    VIDEO_TASK,
    JobMessage,
    TaskKind,
    chunk_task,
)
from vod.keys import MASTER_PLAYLIST, output_prefix
from vod.ladder import Rung as LadderRung
from vod.ladder import Variant as Rung
from vod.ladder import audio_folder, hdr_variants, plan_ladder
from vod.loudness import LoudnessTarget
from vod.model import AudioTrack, Status, Video
from vod.model import Rendition as RecordRendition
from vod.plan import (
    GOPS_PER_SEGMENT,
    Chunk,
    Mode,
    TranscodePlan,
    clock,
    plan_chunks,
    segment_frames,
)
from vod.settings import WorkerSettings
from vod.tasks import describe_task, ready_to_stitch, task_states
from worker import fmp4
from worker.encode import (
    VARIANT_PLAYLIST,
    audio_command,
    chunk_command,
    preroll_frames,
    run_encode,
    single_command,
)
from worker.errors import Interrupted, OverBudget, Superseded, Unprocessable
from worker.hls import (
    AAC_LC_CODEC,
    ESTIMATED_AUDIO,
    IFRAME_PLAYLIST,
    AudioRendition,
    MediaPlaylist,
    Rates,
    Segment,
    Variant,
    audio_names,
    iframe_rates,
    master_playlist,
    media_playlist,
)
from worker.ledger import ClaimState, Ledger
from worker.logs import event
from worker.loudness import Measurement, measure, normalize_filter
from worker.probe import Media, describe, run_ffprobe
from worker.publish import Publisher
from worker.quality import Score, score_rungs
from worker.renditions import Rendition, collect, collect_chunk
from worker.run import TaskRun
from worker.storage import SourceMissing, Storage
from worker.thumbnails import (
    POSTER_NAME,
    SPRITE_NAME,
    THUMBNAILS_NAME,
    SpriteSheet,
    extract_keyframes,
    extract_poster,
    join_rendition,
    plan_sprite,
    poster_keyframe,
    tile,
    webvtt,
)

#: A file that decodes to less than this share of its declared duration is
#: cut short (an upload that stopped early, with its index up front).
MIN_DECODED_SHARE = 0.9
#: Where a chunk leaves its share of the sprite until the video is stitched.
THUMBS_FOLDER = "thumbs/"
#: Where a chunk leaves its rungs' I-frame playlist entries until then.
IFRAMES_FOLDER = "iframes/"
#: CPU priority of every chunk but the first, below the first chunk's and
#: the audio's, which make the video playable.
LATER_CHUNK_NICENESS = 10
#: The least bit depth of a source that gets the HDR ladder.
HDR_MIN_BIT_DEPTH = 10
#: How often the audio task publishes the segments it has made so far.
AUDIO_PUBLISH_SECONDS = 1.0
#: A presigned source URL outlives the task's budget by this much.
_URL_SLACK_SECONDS = 600
_SEGMENT = re.compile(r"seg_\d{5}\.m4s")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class Outcome(enum.Enum):
    READY = "ready"
    FAILED = "failed"
    #: The task is finished (a chunk, the audio, a planned video).
    DONE = "done"
    #: Nothing to do: the task or the video is finished, or the video gone.
    SKIPPED = "skipped"
    #: Not now: the video is not queued yet, or another worker holds the
    #: task; the job comes back later.
    DEFERRED = "deferred"
    #: This worker lost the task to another: the job is left as it is.
    SUPERSEDED = "superseded"


@dataclasses.dataclass(frozen=True)
class Result:
    outcome: Outcome
    #: For DEFERRED: when to see the job again (None: its visibility timeout).
    retry_after: float | None = None

    @property
    def settles_message(self) -> bool:
        return self.outcome in (
            Outcome.READY,
            Outcome.FAILED,
            Outcome.DONE,
            Outcome.SKIPPED,
        )


class JobSender(Protocol):
    """What a worker needs of the jobs queue to fan a video out."""

    def send(self, jobs: Sequence[JobMessage]) -> None: ...


class Transcoder:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        ledger: Ledger,
        storage: Storage,
        jobs: JobSender,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._storage = storage
        self._jobs = jobs
        self._clock = clock
        self._publisher = Publisher(storage, settings.output_bucket)

    def give_up(self, job: JobMessage, reason: str) -> None:
        """Fail the video of a job that will not be retried again."""
        self._ledger.fail(job.video_id, reason)

    def process(self, job: JobMessage, run: TaskRun) -> Result:
        """Run ``job``. Raises Interrupted when the worker stops mid-task, and
        lets unexpected errors (an AWS outage) through, for the job's next
        delivery to redo the task."""
        claim = self._ledger.claim(job.video_id, job.task)
        fields: dict[str, Any] = {"videoId": job.video_id, "task": job.task}
        if claim.state is ClaimState.GONE:
            event("job.skipped", reason="video gone or finished", **fields)
            return Result(Outcome.SKIPPED)
        if claim.state is ClaimState.EARLY:
            event("job.deferred", reason="video not queued yet", **fields)
            return Result(Outcome.DEFERRED)
        if claim.state is ClaimState.BUSY:
            event("job.deferred", reason="task held", **fields)
            return Result(Outcome.DEFERRED, retry_after=claim.wait_seconds + 1)
        assert claim.video is not None
        if claim.state is ClaimState.DONE:
            return self._after_done(job, claim.video, run)
        video = claim.video
        self._check_source(job, video)
        run.hold(lambda: self._ledger.renew(job.video_id, job.task))
        plan = TranscodePlan.from_dict(video.plan) if video.plan else None
        event("task.claimed", attempt=claim.task.attempts, **fields)
        try:
            with self._scratch(video.id, job.task) as job_dir:
                if job.kind is TaskKind.VIDEO:
                    return self._video(job, video, plan, job_dir, run)
                if plan is None:
                    raise RuntimeError(f"video {video.id} has no plan for {job.task}")
                if job.kind is TaskKind.CHUNK:
                    return self._chunk(job, video, plan, job_dir, run)
                return self._audio(video, plan, job_dir, run)
        except Unprocessable as error:
            return self._fail(job, plan, error.reason)
        except OverBudget as error:
            return self._fail(job, plan, self._over_budget(job, plan, error))
        except Superseded:
            event("task.superseded", **fields)
            return Result(Outcome.SUPERSEDED)
        except Interrupted:
            self._ledger.release(job.video_id, job.task)
            raise

    def _check_source(self, job: JobMessage, video: Video) -> None:
        if job.bucket != self._settings.source_bucket or job.key != video.key:
            raise ValueError(
                f"job names s3://{job.bucket}/{job.key}, but video {video.id} was "
                f"uploaded to s3://{self._settings.source_bucket}/{video.key}"
            )

    def _fail(self, job: JobMessage, plan: TranscodePlan | None, reason: str) -> Result:
        if job.kind is TaskKind.CHUNK:
            reason = f"{describe_task(job, plan)}: {reason}"
        event("job.unprocessable", videoId=job.video_id, task=job.task, reason=reason)
        self._ledger.fail(job.video_id, reason)
        return Result(Outcome.FAILED)

    def _over_budget(
        self, job: JobMessage, plan: TranscodePlan | None, error: OverBudget
    ) -> str:
        what = describe_task(job, plan)
        return (
            f"{what} took longer than its time budget of "
            f"{error.budget_seconds:.0f} s ({self._settings.job_time_factor:g} s "
            "per second of video, plus "
            f"{self._settings.job_time_allowance_seconds} s): the source is too "
            "slow to transcode"
        )

    @contextlib.contextmanager
    def _scratch(self, video_id: str, task: str) -> Iterator[Path]:
        job_dir = Path(self._settings.work_dir) / f"{video_id}-{task}"
        shutil.rmtree(job_dir, ignore_errors=True)
        job_dir.mkdir(parents=True)
        try:
            yield job_dir
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    # --- the video task: probe, limits, plan; encode or fan out ----------------

    def _video(
        self,
        job: JobMessage,
        video: Video,
        plan: TranscodePlan | None,
        job_dir: Path,
        run: TaskRun,
    ) -> Result:
        run.set_budget(self._settings.job_time_allowance_seconds)
        if plan is None:
            plan = self._plan(video, run)
        display = (plan.display_width, plan.display_height)
        self._ledger.set_plan(
            video.id,
            plan,
            {
                "duration": round(plan.duration, 3),
                "width": display[0],
                "height": display[1],
            },
        )
        event(
            "video.planned",
            videoId=video.id,
            mode=plan.mode.value,
            duration=plan.duration,
            chunks=len(plan.chunks),
            frameRate=str(plan.frame_rate),
            audio=plan.has_audio,
            range=plan.source_range.value,
            wideGamut=plan.wide_gamut,
            variants=[
                f"{v.name}:{v.width}x{v.height}@{v.max_bitrate}"
                for v in plan.video_variants
            ],
        )
        if plan.mode is Mode.SINGLE:
            run.set_budget(self._settings.time_budget(plan.duration))
            return self._single(job, video, plan, job_dir, run)
        first, *rest = (job.for_task(TaskKind.CHUNK, c.index) for c in plan.chunks)
        audio = [job.for_task(TaskKind.AUDIO)] if plan.has_audio else []
        # The start first: the first chunk and the audio make it playable.
        self._jobs.send([first, *audio, *rest])
        self._ledger.finish(
            video.id,
            VIDEO_TASK,
            cpu_seconds=run.cpu_seconds,
            wall_seconds=run.wall_seconds,
        )
        event("video.fanned_out", videoId=video.id, jobs=1 + len(audio) + len(rest))
        return Result(Outcome.DONE)

    def _plan(self, video: Video, run: TaskRun) -> TranscodePlan:
        bucket = self._settings.source_bucket
        self._source_size(video)
        url = self._storage.url(
            bucket, video.key, expires_seconds=self._settings.job_time_allowance_seconds
        )
        media = describe(run_ffprobe(url))
        run.check()
        self._check_limits(media)
        return plan_transcode(
            media,
            ladder=self._settings.ladder,
            chunk_seconds=self._settings.chunk_seconds,
            preset=self._settings.x264_preset,
            hdr_ladder=self._settings.hdr_ladder,
            max_audio_tracks=self._settings.max_audio_tracks,
            loudness=self._settings.loudness,
        )

    def _check_limits(self, media: Media) -> None:
        settings = self._settings
        source = media.source
        if source.duration > settings.max_duration_seconds:
            raise Unprocessable(
                f"the video is {clock(source.duration)} long, above the "
                f"{clock(settings.max_duration_seconds)} maximum duration "
                "(maxSourceMinutes)"
            )
        width, height = source.display_size
        if not settings.max_frame_size.fits(width, height):
            raise Unprocessable(
                f"the video's frames are {width}x{height}, above the largest "
                f"frame size {settings.max_frame_size} (maxFrameSize)"
            )
        rate = _source_rate(media)
        if rate > settings.max_frame_rate:
            raise Unprocessable(
                f"the video runs at {float(rate):.4g} frames per second, above "
                f"the {settings.max_frame_rate} fps maximum (maxFrameRate)"
            )

    # --- one run for a short source ---------------------------------------------

    def _single(
        self,
        job: JobMessage,
        video: Video,
        plan: TranscodePlan,
        job_dir: Path,
        run: TaskRun,
    ) -> Result:
        source = self._download(video, job_dir)
        run.check()
        out = job_dir / "out"
        out.mkdir()
        started = self._clock()
        measured = self._measure_source(str(source), plan, job_dir, run)
        filters = _normalize_filters(plan, measured)
        self._encode(
            single_command(str(source), plan, out, audio_filters=filters),
            job_dir,
            run,
            self._credits(job, video, limit=plan.duration),
            source_label=str(source),
        )
        rungs = [collect(out, v.name, video=True) for v in plan.variants]
        hdr = [collect(out, v.name, video=True) for v in plan.hdr_variants]
        audios = [
            collect(out, audio_folder(t), video=False)
            for t in range(len(plan.audio_tracks))
        ]
        event(
            "encode.finished",
            videoId=video.id,
            seconds=round(self._clock() - started, 2),
            encoded=rungs[0].duration,
        )
        _check_decoded(rungs[0].duration, plan.duration)
        scores = self._score(str(source), plan, [*rungs, *hdr], 0, job_dir, run)
        prefix = output_prefix(video.id)
        sheet = _sprite_sheet(plan)
        keyframes = _keyframe_count(rungs[-1].duration, plan)
        thumbs = self._thumbnails(rungs[-1], sheet, 0, keyframes, job_dir)
        files = {**_rendition_files(prefix, [*rungs, *hdr], audios)}
        files[prefix + POSTER_NAME] = self._poster(rungs[0], plan, 0, job_dir)
        sprite = tile([path for _, path in thumbs], sheet, job_dir / SPRITE_NAME)
        files[prefix + SPRITE_NAME] = sprite
        vtt = job_dir / THUMBNAILS_NAME
        vtt.write_text(webvtt(sheet, plan.duration))
        files[prefix + THUMBNAILS_NAME] = vtt
        variants = [
            _variant(plan, r, _codec(rung), rung.rates(), iframe_rates(rung.iframes))
            for r, rung in zip(plan.video_variants, [*rungs, *hdr], strict=True)
        ]
        playlists = job_dir / "playlists"
        texts = {
            f"{rung.name}/{VARIANT_PLAYLIST}": media_playlist(
                rung.published(), complete=True
            )
            for rung in [*rungs, *hdr, *audios]
        }
        texts |= _iframe_playlists({r.name: r.iframes for r in [*rungs, *hdr]})
        texts[MASTER_PLAYLIST] = master_playlist(
            variants,
            audio=[
                AudioRendition(audio.name, language, audio.rates())
                for audio, language in zip(audios, plan.audio_tracks, strict=True)
            ],
        )
        outputs = self._measure_outputs(audios, job_dir, run)
        tracks = _audio_tracks(
            prefix, plan, _loudness_facts(measured, outputs, filters)
        )
        for name, text in texts.items():
            path = playlists / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            files[prefix + name] = path
        run.check()
        uploaded = self._storage.upload(self._settings.output_bucket, files)
        event("outputs.uploaded", videoId=video.id, files=uploaded)
        self._ready(video, plan, variants, scores, tracks, run, task=VIDEO_TASK)
        return Result(Outcome.READY)

    # --- chunks and audio ------------------------------------------------------------

    def _chunk(
        self,
        job: JobMessage,
        video: Video,
        plan: TranscodePlan,
        job_dir: Path,
        run: TaskRun,
    ) -> Result:
        assert job.chunk is not None
        chunk = plan.chunk(job.chunk)
        budget = self._settings.time_budget(chunk.seconds)
        run.set_budget(budget)
        source = self._source(video, plan, job_dir, expires=budget)
        out = job_dir / "out"
        out.mkdir()
        started = self._clock()
        self._encode(
            chunk_command(source, plan, chunk, out),
            job_dir,
            run,
            self._credits(job, video, limit=chunk.seconds),
            source_label=source,
            # Workers sharing a machine (the local run) give the start of the
            # video, which makes it playable, the CPU first.
            niceness=LATER_CHUNK_NICENESS if chunk.index else 0,
        )
        rungs = [
            collect_chunk(
                out,
                v.name,
                first_segment=chunk.first_segment,
                first_frame=chunk.first_frame,
                frame_rate=plan.frame_rate,
                preroll_gops=preroll_frames(plan, chunk) // plan.gop_frames,
                gops_per_segment=GOPS_PER_SEGMENT,
            )
            for v in plan.video_variants
        ]
        _check_chunk(chunk, plan, rungs[0])
        first_key = chunk.first_frame // plan.gop_frames
        scores = self._score(
            source,
            plan,
            rungs,
            first_key,
            job_dir,
            run,
            niceness=LATER_CHUNK_NICENESS if chunk.index else 0,
        )
        prefix = output_prefix(video.id)
        files = _rendition_files(prefix, rungs, [])
        # The images come from the SDR rungs (the first, the last).
        rungs, hdr = rungs[: len(plan.variants)], rungs[len(plan.variants) :]
        keyframes = _keyframe_count(rungs[0].duration, plan)
        sheet = _sprite_sheet(plan)
        for index, path in self._thumbnails(
            rungs[-1], sheet, first_key, keyframes, job_dir
        ):
            files[f"{prefix}{THUMBS_FOLDER}{index:05d}.jpg"] = path
        poster = poster_keyframe(plan.duration, sheet.gop_seconds)
        if first_key <= poster < first_key + keyframes:
            files[prefix + POSTER_NAME] = self._poster(
                rungs[0], plan, first_key, job_dir
            )
        iframes = job_dir / "iframes.json"
        iframes.write_text(
            json.dumps(
                {
                    rung.name: [_iframe_entry(f) for f in rung.iframes]
                    for rung in [*rungs, *hdr]
                },
                separators=(",", ":"),
            )
        )
        files[_iframes_key(prefix, chunk.index)] = iframes
        run.check()
        self._storage.upload(self._settings.output_bucket, files)
        facts = {
            "durations": [seconds for _, seconds in rungs[0].segments],
            "rungs": {
                rung.name: {
                    "init": rung.init,
                    "codec": _codec(rung),
                    "bytes": sum(rung.sizes()),
                    "peak": rung.rates().peak if rung.segments else 0,
                    "psnr": scores[rung.name].to_list(),
                }
                for rung in [*rungs, *hdr]
            },
        }
        done = self._ledger.finish(
            video.id,
            job.task,
            cpu_seconds=run.cpu_seconds,
            wall_seconds=run.wall_seconds,
            facts=json.dumps(facts, separators=(",", ":")),
            count_chunk=True,
        )
        event(
            "chunk.finished",
            videoId=video.id,
            chunk=chunk.index,
            seconds=round(self._clock() - started, 2),
            segments=len(rungs[0].segments),
        )
        return self._advance(done, run)

    def _audio(
        self,
        video: Video,
        plan: TranscodePlan,
        job_dir: Path,
        run: TaskRun,
    ) -> Result:
        budget = self._settings.time_budget(plan.duration)
        run.set_budget(budget)
        source = self._source(video, plan, job_dir, expires=budget)
        out = job_dir / "out"
        out.mkdir()
        measured = self._measure_source(source, plan, job_dir, run)
        filters = _normalize_filters(plan, measured)
        self._encode(
            audio_command(source, plan, out, audio_filters=filters),
            job_dir,
            run,
            AudioSoFar(
                out,
                len(plan.audio_tracks),
                prefix=output_prefix(video.id),
                upload=lambda files: self._storage.upload(
                    self._settings.output_bucket, files
                ),
                reached=lambda facts: self._grow(
                    self._ledger.report(
                        video.id, AUDIO_TASK, json.dumps(facts, separators=(",", ":"))
                    ),
                    plan,
                ),
                clock=self._clock,
            ),
            source_label=source,
        )
        audios = [
            collect(out, audio_folder(t), video=False)
            for t in range(len(plan.audio_tracks))
        ]
        if not all(audio.segments for audio in audios):
            raise Unprocessable("an audio track could not be decoded")
        prefix = output_prefix(video.id)
        self._storage.upload(
            self._settings.output_bucket, _rendition_files(prefix, [], audios)
        )
        outputs = self._measure_outputs(audios, job_dir, run)
        facts = {
            "tracks": [
                {
                    "durations": [seconds for _, seconds in audio.segments],
                    "init": audio.init,
                    "bytes": sum(audio.sizes()),
                    "peak": audio.rates().peak,
                    **loudness,
                }
                for audio, loudness in zip(
                    audios, _loudness_facts(measured, outputs, filters), strict=True
                )
            ]
        }
        done = self._ledger.finish(
            video.id,
            AUDIO_TASK,
            cpu_seconds=run.cpu_seconds,
            wall_seconds=run.wall_seconds,
            facts=json.dumps(facts, separators=(",", ":")),
        )
        event(
            "audio.finished",
            videoId=video.id,
            tracks=len(audios),
            segments=len(audios[0].segments),
        )
        return self._advance(done, run)

    # --- growing, then stitching -------------------------------------------------

    def _after_done(self, job: JobMessage, video: Video, run: TaskRun) -> Result:
        """A job whose task is done: only the stitch may be left to do, if the
        worker that was to do it died."""
        if video.status is Status.PROCESSING and video.plan:
            plan = TranscodePlan.from_dict(video.plan)
            if ready_to_stitch(video.tasks, plan):
                return self._stitch(video, run)
        event("job.skipped", reason="task done", videoId=job.video_id, task=job.task)
        return Result(Outcome.SKIPPED)

    def _advance(self, video: Video, run: TaskRun) -> Result:
        """After a task of a chunked video: stitch when it was the last,
        else publish what is newly playable from the start."""
        assert video.plan is not None
        plan = TranscodePlan.from_dict(video.plan)
        if ready_to_stitch(video.tasks, plan):
            return self._stitch(video, run)
        self._grow(video, plan)
        return Result(Outcome.DONE)

    def _grow(self, video: Video, plan: TranscodePlan) -> None:
        facts = _Facts.of(video, plan)
        ready = facts.ready_chunks()
        if plan.has_audio:
            if facts.audio is None:
                return
            # Only as far as the audio made so far reaches.
            while ready and plan.chunks[ready - 1].end_seconds > facts.audio_reach:
                ready -= 1
        if not ready:
            return
        until = plan.chunks[ready - 1].end_seconds
        if video.playable_until is not None and video.playable_until >= until:
            return
        prefix = output_prefix(video.id)
        variants = facts.variants(ready, measured=False)
        texts = facts.media_playlists(ready, until=until)
        self._publisher.media_playlists(prefix, texts, version=ready, final=False)
        self._publisher.master(
            prefix,
            master_playlist(variants, audio=facts.audio_renditions(measured=False)),
            final=False,
        )
        if self._ledger.mark_playable(
            video.id, until=until, playback=prefix + MASTER_PLAYLIST
        ):
            event("video.playable", videoId=video.id, chunks=ready, until=until)

    def _stitch(self, video: Video, run: TaskRun) -> Result:
        claim = self._ledger.claim(video.id, STITCH_TASK)
        if claim.state is ClaimState.BUSY:
            return Result(Outcome.DEFERRED, retry_after=claim.wait_seconds + 1)
        if claim.state is not ClaimState.CLAIMED:
            return Result(Outcome.SKIPPED)
        assert claim.video is not None
        video = claim.video
        run.hold(lambda: self._ledger.renew(video.id, STITCH_TASK))
        run.set_budget(self._settings.job_time_allowance_seconds)
        plan = TranscodePlan.from_dict(video.plan or {})
        facts = _Facts.of(video, plan)
        total = len(plan.chunks)
        try:
            _check_decoded(facts.video_seconds(total), plan.duration)
            with self._scratch(video.id, STITCH_TASK) as job_dir:
                self._publish_final(video, plan, facts, job_dir, run)
        except Unprocessable as error:
            self._ledger.fail(video.id, error.reason)
            return Result(Outcome.FAILED)
        return Result(Outcome.READY)

    def _publish_final(
        self,
        video: Video,
        plan: TranscodePlan,
        facts: _Facts,
        job_dir: Path,
        run: TaskRun,
    ) -> None:
        prefix = output_prefix(video.id)
        bucket = self._settings.output_bucket
        sheet = _sprite_sheet(plan)
        thumb_keys = [f"{prefix}{THUMBS_FOLDER}{i:05d}.jpg" for i in range(sheet.count)]
        thumbs = []
        for index, key in enumerate(thumb_keys):
            path = job_dir / f"thumb_{index:05d}.jpg"
            path.write_bytes(self._storage.get(bucket, key))
            thumbs.append(path)
        sprite = tile(thumbs, sheet, job_dir / SPRITE_NAME)
        vtt = job_dir / THUMBNAILS_NAME
        vtt.write_text(webvtt(sheet, plan.duration))
        self._storage.upload(
            bucket, {prefix + SPRITE_NAME: sprite, prefix + THUMBNAILS_NAME: vtt}
        )
        total = len(plan.chunks)
        iframe_keys = [_iframes_key(prefix, index) for index in range(total)]
        iframes: dict[str, list[Segment]] = {v.name: [] for v in plan.video_variants}
        for key in iframe_keys:
            for name, entries in json.loads(self._storage.get(bucket, key)).items():
                iframes[name] += [_iframe_segment(entry) for entry in entries]
        texts = facts.media_playlists(total, until=None)
        texts |= _iframe_playlists(iframes)
        run.check()
        self._publisher.media_playlists(prefix, texts, version=total + 1, final=True)
        variants = [
            dataclasses.replace(v, iframe_rates=iframe_rates(iframes[v.name]))
            for v in facts.variants(total, measured=True)
        ]
        self._publisher.master(
            prefix,
            master_playlist(variants, audio=facts.audio_renditions(measured=True)),
            final=True,
        )
        tracks = _audio_tracks(
            prefix, plan, facts.audio["tracks"] if facts.audio else []
        )
        self._ready(
            video, plan, variants, facts.scores(total), tracks, run, task=STITCH_TASK
        )
        self._storage.delete(bucket, thumb_keys + iframe_keys)

    def _ready(
        self,
        video: Video,
        plan: TranscodePlan,
        variants: Sequence[Variant],
        scores: Mapping[str, Score],
        audio_tracks: Sequence[AudioTrack],
        run: TaskRun,
        *,
        task: str,
    ) -> None:
        cpu, wall = run.cpu_seconds, run.wall_seconds
        for name, state in task_states(video.tasks).items():
            if name != task and state.done:
                cpu += state.cpu_seconds
                wall += state.wall_seconds
        settings = self._settings
        cost = fargate_cost(
            cpu_seconds=cpu,
            wall_seconds=wall,
            task_vcpu=settings.task_vcpu,
            task_memory_gib=settings.task_memory_mib / 1024,
            prices=FargatePrices(settings.usd_per_vcpu_hour, settings.usd_per_gb_hour),
        )
        prefix = output_prefix(video.id)
        frame_rate = round(float(plan.frame_rate), 3)
        fields: dict[str, Any] = {
            "progress": 100,
            "duration": round(plan.duration, 3),
            "width": plan.display_width,
            "height": plan.display_height,
            "renditions": [
                RecordRendition(
                    name=v.name,
                    width=v.width,
                    height=v.height,
                    bitrate=v.max_bitrate,
                    playlist=f"{prefix}{v.playlist}",
                    codecs=(
                        f"{v.codecs},{AAC_LC_CODEC}" if plan.has_audio else v.codecs
                    ),
                    frame_rate=frame_rate,
                    average_bitrate=v.rates.average if v.rates else None,
                    peak_bitrate=v.rates.peak if v.rates else None,
                    psnr=scores[v.name].psnr,
                ).to_dict()
                for v in variants
            ],
            "audio_tracks": [track.to_dict() for track in audio_tracks],
            "playback": prefix + MASTER_PLAYLIST,
            "poster": prefix + POSTER_NAME,
            "sprite": prefix + SPRITE_NAME,
            "thumbnails": prefix + THUMBNAILS_NAME,
            "cost": cost,
        }
        self._ledger.ready(
            video.id,
            task,
            fields,
            cpu_seconds=run.cpu_seconds,
            wall_seconds=run.wall_seconds,
        )
        event("job.ready", videoId=video.id, renditions=len(variants), cost=cost["usd"])

    # --- pieces ---------------------------------------------------------------------

    def _score(
        self,
        source: str,
        plan: TranscodePlan,
        rungs: Sequence[Rendition],
        first_gop: int,
        job_dir: Path,
        run: TaskRun,
        *,
        niceness: int = 0,
    ) -> dict[str, Score]:
        return score_rungs(
            source,
            plan,
            rungs,
            first_gop=first_gop,
            work_dir=job_dir / "score",
            run=lambda args: self._encode(
                args,
                job_dir,
                run,
                lambda _: None,
                source_label=source,
                niceness=niceness,
            ),
        )

    def _source(
        self, video: Video, plan: TranscodePlan, job_dir: Path, *, expires: float
    ) -> str:
        """Where ffmpeg reads the source: a presigned URL it reads ranges of,
        for an indexed container; else a download."""
        if plan.seekable:
            return self._storage.url(
                self._settings.source_bucket,
                video.key,
                expires_seconds=int(expires) + _URL_SLACK_SECONDS,
            )
        return str(self._download(video, job_dir))

    def _source_size(self, video: Video) -> int:
        """The original's size; a missing or empty one fails the video."""
        try:
            size = self._storage.size(self._settings.source_bucket, video.key)
        except SourceMissing:
            raise Unprocessable("the uploaded file no longer exists") from None
        if size == 0:
            raise Unprocessable("the uploaded file is empty")
        return size

    def _download(self, video: Video, job_dir: Path) -> Path:
        bucket = self._settings.source_bucket
        size = self._source_size(video)
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

    def _encode(
        self,
        args: list[str],
        job_dir: Path,
        run: TaskRun,
        on_position: Callable[[float], None],
        *,
        source_label: str,
        niceness: int = 0,
    ) -> None:
        with self._interruptible(run):
            run_encode(
                args,
                log_path=job_dir / "ffmpeg.log",
                cancel=run.cancel,
                on_position=on_position,
                source_label=source_label,
                niceness=niceness,
            )

    def _measure_source(
        self, source: str, plan: TranscodePlan, job_dir: Path, run: TaskRun
    ) -> list[Measurement | None]:
        """The first pass: each audio track's loudness in the source (none
        measured with the normalization off)."""
        if plan.loudness is None or not plan.audio_tracks:
            return [None] * len(plan.audio_tracks)
        streams = [f"0:a:{track}" for track in range(len(plan.audio_tracks))]
        with self._interruptible(run):
            return list(
                measure(
                    [source],
                    streams,
                    log_path=job_dir / "loudness.log",
                    cancel=run.cancel,
                    source_label=source,
                )
            )

    def _measure_outputs(
        self, audios: Sequence[Rendition], job_dir: Path, run: TaskRun
    ) -> list[Measurement]:
        """Each encoded audio rendition's loudness, for the record."""
        if not audios:
            return []
        joined = [
            str(join_rendition(a.folder / a.init, a.paths(), job_dir / f"{a.name}.mp4"))
            for a in audios
        ]
        streams = [f"{index}:a:0" for index in range(len(joined))]
        with self._interruptible(run):
            return measure(
                joined, streams, log_path=job_dir / "loudness.log", cancel=run.cancel
            )

    @staticmethod
    @contextlib.contextmanager
    def _interruptible(run: TaskRun) -> Iterator[None]:
        """An ffmpeg run stopped by ``run``: its budget or the worker's stop."""
        try:
            yield
        except Interrupted:
            run.check()
            raise

    def _credits(
        self, job: JobMessage, video: Video, *, limit: float
    ) -> ProgressCredits:
        state = task_states(video.tasks).get(job.task)
        return ProgressCredits(
            lambda credited, now: self._ledger.credit(
                video.id, job.task, credited=credited, now=now
            ),
            credited=state.credited if state else 0.0,
            limit=limit,
            interval=self._settings.progress_interval_seconds,
            clock=self._clock,
        )

    def _thumbnails(
        self,
        rung: Rendition,
        sheet: SpriteSheet,
        first_key: int,
        keyframes: int,
        job_dir: Path,
    ) -> list[tuple[int, Path]]:
        """The sprite's thumbnails among this run's keyframes (numbered from
        ``first_key`` in the whole video), from its smallest rung."""
        indices = sheet.keyframes(first_key, keyframes)
        if not indices:
            return []
        joined = join_rendition(
            rung.folder / rung.init, rung.paths(), job_dir / "thumbs-source.mp4"
        )
        frames = extract_keyframes(
            joined,
            [index * sheet.step - first_key for index in indices],
            job_dir / "thumbs",
            width=sheet.tile_width,
            height=sheet.tile_height,
        )
        return list(zip(indices, frames, strict=True))

    def _poster(
        self, top: Rendition, plan: TranscodePlan, first_key: int, job_dir: Path
    ) -> Path:
        keyframe = poster_keyframe(plan.duration, _sprite_sheet(plan).gop_seconds)
        joined = join_rendition(top.folder / top.init, top.paths(), job_dir / "top.mp4")
        variant = plan.variants[0]
        return extract_poster(
            joined,
            keyframe - first_key,
            job_dir / POSTER_NAME,
            width=variant.width,
            height=variant.height,
        )


def plan_transcode(
    media: Media,
    *,
    ladder: tuple[LadderRung, ...],
    chunk_seconds: int,
    preset: str,
    max_audio_tracks: int = WorkerSettings.max_audio_tracks,
    loudness: LoudnessTarget | None = None,
    hdr_ladder: bool = False,
) -> TranscodePlan:
    """The plan of a probed source: its ladder, its first
    ``max_audio_tracks`` audio tracks, and one run or chunks. With
    ``hdr_ladder``, a PQ or HLG source of 10 bits or more also gets HDR
    rungs (an 8-bit one has no more to show in 10-bit HEVC than in SDR)."""
    rungs = plan_ladder(media.source, ladder)
    source = media.source
    hdr = hdr_ladder and source.bit_depth >= HDR_MIN_BIT_DEPTH
    chunks = plan_chunks(source.duration, rungs.frame_rate, chunk_seconds)
    width, height = source.display_size
    return TranscodePlan(
        mode=Mode.CHUNKED if len(chunks) > 1 else Mode.SINGLE,
        duration=source.duration,
        display_width=width,
        display_height=height,
        frame_rate=rungs.frame_rate,
        variants=rungs.variants,
        has_audio=rungs.has_audio,
        video_stream=media.video_stream,
        preset=preset,
        seekable=media.seekable,
        chunks=chunks,
        source_frame_rate=_source_rate(media),
        audio_languages=source.audio_languages[:max_audio_tracks],
        loudness=loudness,
        source_range=source.dynamic_range,
        hdr_variants=hdr_variants(rungs.variants, source.dynamic_range) if hdr else (),
        hdr10=media.hdr10 if hdr else "",
        wide_gamut=source.wide_gamut,
    )


class AudioSoFar:
    """While the audio task encodes, each second: the segments ffmpeg has
    finished go up, the record learns how far each track reaches, and the
    playlists grow. The whole tracks of a long source take minutes; their
    start takes a second, so the video plays once its first chunk is done."""

    def __init__(
        self,
        out_dir: Path,
        tracks: int,
        *,
        prefix: str,
        upload: Callable[[dict[str, Path]], object],
        reached: Callable[[dict[str, Any]], None],
        clock: Callable[[], float],
    ) -> None:
        self._folders = [out_dir / audio_folder(track) for track in range(tracks)]
        self._prefix = prefix
        self._upload = upload
        self._reached = reached
        self._clock = clock
        self._last = clock()
        self._uploaded: set[str] = set()

    def __call__(self, _position: float) -> None:
        now = self._clock()
        if now - self._last < AUDIO_PUBLISH_SECONDS:
            return
        self._last = now
        reports = []
        files: dict[str, Path] = {}
        for folder in self._folders:
            finished = self._finished(folder)
            if finished is None:
                return
            init_name, segments = finished
            reports.append(
                {"durations": [seconds for _, seconds in segments], "init": init_name}
            )
            for name in [init_name, *(uri for uri, _ in segments)]:
                key = f"{self._prefix}{folder.name}/{name}"
                if key not in self._uploaded:
                    files[key] = folder / name
        if not files:
            return
        self._upload(files)
        self._uploaded |= set(files)
        self._reached({"tracks": reports})

    @staticmethod
    def _finished(folder: Path) -> tuple[str, list[tuple[str, float]]] | None:
        """The published init name and the finished segments of one track,
        None before it has both."""
        playlist = folder / VARIANT_PLAYLIST
        if not playlist.is_file():
            return None
        listed = MediaPlaylist.parse(playlist.read_text())
        # ffmpeg lists a segment once it has closed it; a playlist read while
        # ffmpeg rewrites it may end early, never with a name cut short.
        segments = [
            (uri, seconds)
            for uri, seconds in listed.segments
            if _SEGMENT.fullmatch(uri) and (folder / uri).is_file()
        ]
        if not listed.init or not segments:
            return None
        init = (folder / listed.init).read_bytes()
        init_name = fmp4.content_name(init)
        (folder / init_name).write_bytes(init)
        return init_name, segments


class ProgressCredits:
    """Turns ffmpeg's positions (seconds of output) into progress credits on
    the record: the first as soon as anything is encoded, then at most one
    per ``interval``, only for media not credited before (a redone task
    adds nothing until it passes where the last attempt got)."""

    def __init__(
        self,
        credit: Callable[[float, float], None],
        *,
        credited: float,
        limit: float,
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._credit = credit
        self._credited = credited
        self._limit = limit
        self._interval = interval
        self._clock = clock
        self._last: float | None = None

    def __call__(self, position: float) -> None:
        position = round(min(position, self._limit), 3)
        if position <= self._credited:
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        self._credit(self._credited, position)
        self._credited, self._last = position, now


@dataclasses.dataclass(frozen=True)
class _Facts:
    """What the finished tasks of a chunked video reported."""

    plan: TranscodePlan
    chunks: Mapping[int, Mapping[str, Any]]
    #: The audio task's facts: all of them once it is done, else how far it
    #: got.
    audio: Mapping[str, Any] | None
    audio_done: bool = False

    @classmethod
    def of(cls, video: Video, plan: TranscodePlan) -> _Facts:
        states = task_states(video.tasks)
        chunks = {}
        for chunk in plan.chunks:
            state = states.get(chunk_task(chunk.index))
            if state is not None and state.done:
                chunks[chunk.index] = state.parsed_facts()
        audio = states.get(AUDIO_TASK)
        return cls(
            plan=plan,
            chunks=chunks,
            audio=audio.parsed_facts() if audio is not None and audio.facts else None,
            audio_done=audio is not None and audio.done,
        )

    @property
    def audio_reach(self) -> float:
        """Seconds from the start the audio made so far covers (all, once
        the audio task is done)."""
        if self.audio is None:
            return 0.0
        if self.audio_done:
            return math.inf
        return float(min(sum(t["durations"]) for t in self.audio["tracks"]))

    def media_playlists(self, chunks: int, *, until: float | None) -> dict[str, str]:
        """Every rendition's media playlist over the first ``chunks`` chunks,
        growing while ``until`` (the seconds they cover) is given, else the
        final one."""
        complete = until is None
        texts = {
            f"{v.name}/{VARIANT_PLAYLIST}": media_playlist(
                self.segments(v.name, chunks), complete=complete
            )
            for v in self.plan.video_variants
        }
        for track in range(len(self.audio["tracks"]) if self.audio else 0):
            texts[f"{audio_folder(track)}/{VARIANT_PLAYLIST}"] = media_playlist(
                self.audio_segments(track, until), complete=complete
            )
        return texts

    def ready_chunks(self) -> int:
        """How many chunks from the first are done."""
        count = 0
        while count in self.chunks:
            count += 1
        return count

    def segments(self, rung: str, chunks: int) -> list[Segment]:
        published = []
        for index in range(chunks):
            chunk = self.plan.chunks[index]
            facts = self.chunks[index]
            init = facts["rungs"][rung]["init"]
            for number, seconds in enumerate(facts["durations"]):
                published.append(
                    Segment(
                        f"seg_{chunk.first_segment + number:05d}.m4s", seconds, init
                    )
                )
        return published

    def scores(self, chunks: int) -> dict[str, Score]:
        """Each rung's score over the first ``chunks`` chunks."""
        scores = {}
        for variant in self.plan.video_variants:
            scores[variant.name] = sum(
                (
                    Score.from_list(self.chunks[i]["rungs"][variant.name]["psnr"])
                    for i in range(chunks)
                ),
                Score(),
            )
        return scores

    def video_seconds(self, chunks: int) -> float:
        return sum(sum(self.chunks[i]["durations"]) for i in range(chunks))

    def audio_segments(self, track: int, until: float | None) -> list[Segment]:
        assert self.audio is not None
        facts = self.audio["tracks"][track]
        published = []
        start = 0.0
        for number, seconds in enumerate(facts["durations"]):
            if until is not None and start >= until:
                break
            published.append(Segment(f"seg_{number:05d}.m4s", seconds, facts["init"]))
            start += seconds
        return published

    def audio_renditions(self, *, measured: bool) -> list[AudioRendition]:
        """The audio tracks as the master lists them: with their measured
        rates once the audio task is done, else the encoder's target."""
        if self.audio is None:
            return []
        renditions = []
        for track, facts in enumerate(self.audio["tracks"]):
            rates = ESTIMATED_AUDIO
            if measured:
                seconds = sum(facts["durations"])
                rates = Rates(round(facts["bytes"] * 8 / seconds), int(facts["peak"]))
            renditions.append(
                AudioRendition(
                    audio_folder(track), self.plan.audio_tracks[track], rates
                )
            )
        return renditions

    def variants(self, chunks: int, *, measured: bool) -> list[Variant]:
        seconds = self.video_seconds(chunks)
        variants = []
        for variant in self.plan.video_variants:
            reports = [self.chunks[i]["rungs"][variant.name] for i in range(chunks)]
            rates = (
                Rates(
                    round(sum(r["bytes"] for r in reports) * 8 / seconds),
                    max(int(r["peak"]) for r in reports),
                )
                if measured
                else None
            )
            variants.append(
                Variant(
                    name=variant.name,
                    width=variant.width,
                    height=variant.height,
                    codecs=reports[0]["codec"],
                    frame_rate=float(self.plan.frame_rate),
                    rates=rates,
                    max_bitrate=variant.max_bitrate,
                    video_range=variant.dynamic_range,
                )
            )
        return variants


def _variant(
    plan: TranscodePlan, rung: Rung, codec: str, rates: Rates, iframes: Rates
) -> Variant:
    return Variant(
        name=rung.name,
        width=rung.width,
        height=rung.height,
        codecs=codec,
        frame_rate=float(plan.frame_rate),
        rates=rates,
        max_bitrate=rung.max_bitrate,
        video_range=rung.dynamic_range,
        iframe_rates=iframes,
    )


def _iframe_playlists(iframes: Mapping[str, Sequence[Segment]]) -> dict[str, str]:
    return {
        f"{name}/{IFRAME_PLAYLIST}": media_playlist(
            frames, complete=True, iframes_only=True
        )
        for name, frames in iframes.items()
    }


def _iframes_key(prefix: str, chunk: int) -> str:
    return f"{prefix}{IFRAMES_FOLDER}{chunk:05d}.json"


def _iframe_entry(frame: Segment) -> list[Any]:
    assert frame.byte_range is not None
    return [frame.uri, frame.duration, frame.init, *frame.byte_range]


def _iframe_segment(entry: Sequence[Any]) -> Segment:
    uri, duration, init, length, offset = entry
    return Segment(str(uri), float(duration), str(init), (int(length), int(offset)))


def _codec(rung: Rendition) -> str:
    codec = fmp4.video_codec((rung.folder / rung.init).read_bytes())
    if codec is None:
        raise RuntimeError(f"rung {rung.name} has no H.264 or HEVC init segment")
    return codec


def _normalize_filters(
    plan: TranscodePlan, measured: Sequence[Measurement | None]
) -> list[str | None]:
    """The second pass of each audio track: its loudnorm filter, or None."""
    target = plan.loudness
    return [
        normalize_filter(m, target) if m is not None and target else None
        for m in measured
    ]


def _loudness_facts(
    measured: Sequence[Measurement | None],
    outputs: Sequence[Measurement],
    filters: Sequence[str | None],
) -> list[dict[str, Any]]:
    """Each audio track's loudness in the source and as encoded, and whether
    it was normalized, as ``_audio_tracks`` reads them."""
    return [
        {
            "source": source.to_dict() if source else None,
            "output": output.to_dict(),
            "normalized": chain is not None,
        }
        for source, output, chain in zip(measured, outputs, filters, strict=True)
    ]


def _audio_tracks(
    prefix: str, plan: TranscodePlan, loudness: Sequence[Mapping[str, Any]]
) -> list[AudioTrack]:
    """The record's audio tracks from each track's ``source`` and ``output``
    loudness and whether it was ``normalized``."""
    names = audio_names(plan.audio_tracks)
    return [
        AudioTrack(
            language=language,
            name=name,
            playlist=f"{prefix}{audio_folder(track)}/{VARIANT_PLAYLIST}",
            source_loudness=measured["source"],
            loudness=measured["output"],
            normalized=bool(measured["normalized"]),
        )
        for track, (language, name, measured) in enumerate(
            zip(plan.audio_tracks, names, loudness, strict=True)
        )
    ]


def _rendition_files(
    prefix: str, rungs: Sequence[Rendition], audios: Sequence[Rendition]
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for rendition in [*rungs, *audios]:
        files.update(rendition.files(prefix))
    return files


def _sprite_sheet(plan: TranscodePlan) -> SpriteSheet:
    return plan_sprite(
        plan.duration,
        plan.display_width,
        plan.display_height,
        gop_frames=plan.gop_frames,
        frame_rate=plan.frame_rate,
    )


def _keyframe_count(seconds: float, plan: TranscodePlan) -> int:
    """Keyframes in ``seconds`` of a rung: one per GOP begun."""
    frames = round(Fraction(seconds) * plan.frame_rate)
    return -(-frames // plan.gop_frames)


def _source_rate(media: Media) -> Fraction:
    """The source's frame rate: its average, which a variable-rate source's
    declared rate (a timestamp resolution) can exceed a thousandfold."""
    source = media.source
    return source.average_frame_rate or source.frame_rate


def _check_decoded(encoded: float, duration: float) -> None:
    if encoded < duration * MIN_DECODED_SHARE:
        raise Unprocessable(
            f"the file is truncated or corrupt: only {encoded:.1f} s of its "
            f"{duration:.1f} s could be decoded"
        )


def _check_chunk(chunk: Chunk, plan: TranscodePlan, rung: Rendition) -> None:
    """A chunk before the last must end exactly where the next begins."""
    if chunk.frames is None:
        return
    frames = round(Fraction(rung.duration) * plan.frame_rate)
    if frames < chunk.frames:
        raise Unprocessable(
            f"the file is truncated or corrupt: only {float(rung.duration):.1f} s "
            f"of this chunk's {chunk.seconds:.1f} s could be decoded"
        )
    expected = -(-chunk.frames // segment_frames(plan.frame_rate))
    if len(rung.segments) != expected:
        raise RuntimeError(
            f"chunk {chunk.index} came out in {len(rung.segments)} segments, "
            f"not {expected}"
        )
