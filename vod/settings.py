"""Runtime settings: the one place that names the environment variables the
stacks set and the Lambdas, the worker and the local runner read.

The CDK constructs import the names from here to build each function's and
task's environment, so a renamed variable cannot drift between the template
and the code that reads it.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tempfile
from collections.abc import Mapping

from vod.costs import FARGATE_LIST_PRICES
from vod.ladder import DEFAULT_LADDER, SEGMENT_SECONDS, Rung, parse_ladder
from vod.loudness import (
    DEFAULT_LOUDNESS,
    TARGET_LUFS_RANGE,
    TRUE_PEAK_RANGE,
    LoudnessTarget,
)


class MissingSetting(RuntimeError):
    """A component started without a variable its stack should have set."""


class Env:
    """Environment variable names, set by the stacks and read at run time."""

    TABLE_NAME = "VOD_TABLE_NAME"
    SOURCE_BUCKET = "VOD_SOURCE_BUCKET"
    OUTPUT_BUCKET = "VOD_OUTPUT_BUCKET"
    PLAYBACK_BASE_URL = "VOD_PLAYBACK_BASE_URL"
    EVENT_BUS_NAME = "VOD_EVENT_BUS_NAME"
    #: "true" when the captions function starts Amazon Transcribe at READY.
    AUTO_CAPTIONS = "VOD_AUTO_CAPTIONS"
    # Upload API
    MAX_UPLOAD_BYTES = "VOD_MAX_UPLOAD_BYTES"
    MIN_PART_BYTES = "VOD_MIN_PART_BYTES"
    ALLOWED_CONTENT_TYPES = "VOD_ALLOWED_CONTENT_TYPES"
    PRESIGN_EXPIRES_SECONDS = "VOD_PRESIGN_EXPIRES_SECONDS"
    MAX_UPLOADS_IN_FLIGHT = "VOD_MAX_UPLOADS_IN_FLIGHT"
    MAX_VIDEOS_PER_OWNER = "VOD_MAX_VIDEOS_PER_OWNER"
    UPLOAD_TTL_SECONDS = "VOD_UPLOAD_TTL_SECONDS"
    # Transcoding
    TRANSCODER = "VOD_TRANSCODER"
    JOBS_QUEUE_URL = "VOD_JOBS_QUEUE_URL"
    LADDER = "VOD_LADDER"
    HEARTBEAT_SECONDS = "VOD_HEARTBEAT_SECONDS"
    VISIBILITY_TIMEOUT_SECONDS = "VOD_VISIBILITY_TIMEOUT_SECONDS"
    STOP_TIMEOUT_SECONDS = "VOD_STOP_TIMEOUT_SECONDS"
    MAX_RECEIVE_COUNT = "VOD_MAX_RECEIVE_COUNT"
    WORK_DIR = "VOD_WORK_DIR"
    X264_PRESET = "VOD_X264_PRESET"
    PROGRESS_INTERVAL_SECONDS = "VOD_PROGRESS_INTERVAL_SECONDS"
    CHUNK_SECONDS = "VOD_CHUNK_SECONDS"
    HDR_LADDER = "VOD_HDR_LADDER"
    MAX_DURATION_SECONDS = "VOD_MAX_DURATION_SECONDS"
    MAX_FRAME_SIZE = "VOD_MAX_FRAME_SIZE"
    MAX_FRAME_RATE = "VOD_MAX_FRAME_RATE"
    JOB_TIME_FACTOR = "VOD_JOB_TIME_FACTOR"
    JOB_TIME_ALLOWANCE_SECONDS = "VOD_JOB_TIME_ALLOWANCE_SECONDS"
    TASK_VCPU = "VOD_TASK_VCPU"
    TASK_MEMORY_MIB = "VOD_TASK_MEMORY_MIB"
    USD_PER_VCPU_HOUR = "VOD_USD_PER_VCPU_HOUR"
    USD_PER_GB_HOUR = "VOD_USD_PER_GB_HOUR"
    MAX_AUDIO_TRACKS = "VOD_MAX_AUDIO_TRACKS"
    #: A number, or LOUDNESS_OFF for no loudness normalization.
    LOUDNESS_TARGET_LUFS = "VOD_LOUDNESS_TARGET_LUFS"
    LOUDNESS_TRUE_PEAK_DBTP = "VOD_LOUDNESS_TRUE_PEAK_DBTP"
    # MediaConvert transcoder
    MEDIACONVERT_ROLE_ARN = "VOD_MEDIACONVERT_ROLE_ARN"
    MEDIACONVERT_JOB_TEMPLATE = "VOD_MEDIACONVERT_JOB_TEMPLATE"
    MEDIACONVERT_BASIC_USD_PER_MINUTE = "VOD_MEDIACONVERT_BASIC_USD_PER_MINUTE"
    MEDIACONVERT_PRO_USD_PER_MINUTE = "VOD_MEDIACONVERT_PRO_USD_PER_MINUTE"


class Transcoder(enum.StrEnum):
    """Who transcodes: the values of ``Env.TRANSCODER`` and of the
    ``transcoder`` context knob."""

    FARGATE = "fargate"
    MEDIACONVERT = "mediaconvert"


def read_str(
    name: str, env: Mapping[str, str] | None = None, *, default: str | None = None
) -> str:
    source = os.environ if env is None else env
    value = source.get(name, "")
    if not value:
        if default is None:
            raise MissingSetting(f"environment variable {name} is not set")
        return default
    return value


def read_int(
    name: str,
    env: Mapping[str, str] | None = None,
    *,
    default: int | None = None,
) -> int:
    source = os.environ if env is None else env
    raw = source.get(name, "")
    if not raw:
        if default is None:
            raise MissingSetting(f"environment variable {name} is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise MissingSetting(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from None


def read_float(
    name: str,
    env: Mapping[str, str] | None = None,
    *,
    default: float,
) -> float:
    source = os.environ if env is None else env
    raw = source.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise MissingSetting(
            f"environment variable {name} must be a number, got {raw!r}"
        ) from None


def read_flag(
    name: str, env: Mapping[str, str] | None = None, *, default: bool
) -> bool:
    """``true`` or ``false``; unset is ``default``."""
    raw = read_str(name, env, default=str(default)).strip().lower()
    if raw not in ("true", "false"):
        raise MissingSetting(
            f"environment variable {name} must be true or false, got {raw!r}"
        )
    return raw == "true"


def read_list(
    name: str, env: Mapping[str, str] | None = None, *, default: str
) -> tuple[str, ...]:
    """A comma-separated list, e.g. content-type patterns ``video/*,audio/mp4``;
    a value with no items falls back to ``default``."""
    items = [item.strip() for item in read_str(name, env, default=default).split(",")]
    kept = tuple(item for item in items if item)
    return kept or tuple(item.strip() for item in default.split(","))


MIB = 1024 * 1024
#: S3 refuses multipart parts below 5 MiB (except the last one).
S3_MIN_PART_BYTES = 5 * MIB
#: SigV4 caps a presigned URL's lifetime at seven days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
#: A URL or form that writes a whole object (a single PUT or POST) is good
#: for at most this long: until then the same URL could write the key again.
SINGLE_UPLOAD_EXPIRES_SECONDS = 600


@dataclasses.dataclass(frozen=True)
class UploadApiSettings:
    """What the upload function reads once per cold start. Defaults: parts of
    at least 8 MiB, ``video/*`` only, URLs valid 1 h, and UPLOADING records
    that expire 4 days after creation unless the upload completes."""

    table_name: str
    source_bucket: str
    max_upload_bytes: int
    min_part_bytes: int
    allowed_content_types: tuple[str, ...]
    presign_expires_seconds: int
    upload_ttl_seconds: int
    max_uploads_in_flight: int = 20
    max_videos_per_owner: int = 1000

    @property
    def single_upload_expires_seconds(self) -> int:
        return min(self.presign_expires_seconds, SINGLE_UPLOAD_EXPIRES_SECONDS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UploadApiSettings:
        settings = cls(
            table_name=read_str(Env.TABLE_NAME, env),
            source_bucket=read_str(Env.SOURCE_BUCKET, env),
            max_upload_bytes=read_int(Env.MAX_UPLOAD_BYTES, env),
            min_part_bytes=read_int(Env.MIN_PART_BYTES, env, default=8 * MIB),
            allowed_content_types=read_list(
                Env.ALLOWED_CONTENT_TYPES, env, default="video/*"
            ),
            presign_expires_seconds=read_int(
                Env.PRESIGN_EXPIRES_SECONDS, env, default=3600
            ),
            upload_ttl_seconds=read_int(
                Env.UPLOAD_TTL_SECONDS, env, default=4 * 24 * 3600
            ),
            max_uploads_in_flight=read_int(Env.MAX_UPLOADS_IN_FLIGHT, env, default=20),
            max_videos_per_owner=read_int(Env.MAX_VIDEOS_PER_OWNER, env, default=1000),
        )
        _in_range(Env.MAX_UPLOADS_IN_FLIGHT, settings.max_uploads_in_flight, 1)
        _in_range(Env.MAX_VIDEOS_PER_OWNER, settings.max_videos_per_owner, 1)
        _in_range(Env.MAX_UPLOAD_BYTES, settings.max_upload_bytes, 1)
        _in_range(Env.MIN_PART_BYTES, settings.min_part_bytes, S3_MIN_PART_BYTES)
        _in_range(
            Env.PRESIGN_EXPIRES_SECONDS,
            settings.presign_expires_seconds,
            1,
            MAX_PRESIGN_SECONDS,
        )
        _in_range(Env.UPLOAD_TTL_SECONDS, settings.upload_ttl_seconds, 1)
        return settings


@dataclasses.dataclass(frozen=True)
class VideosApiSettings:
    """What the videos function reads once per cold start."""

    table_name: str
    source_bucket: str
    output_bucket: str
    playback_base_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VideosApiSettings:
        return cls(
            table_name=read_str(Env.TABLE_NAME, env),
            source_bucket=read_str(Env.SOURCE_BUCKET, env),
            output_bucket=read_str(Env.OUTPUT_BUCKET, env),
            playback_base_url=read_str(Env.PLAYBACK_BASE_URL, env, default=""),
        )


@dataclasses.dataclass(frozen=True)
class CaptionsSettings:
    """What the captions function reads once per cold start."""

    table_name: str
    source_bucket: str
    output_bucket: str
    auto_captions: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CaptionsSettings:
        return cls(
            table_name=read_str(Env.TABLE_NAME, env),
            source_bucket=read_str(Env.SOURCE_BUCKET, env),
            output_bucket=read_str(Env.OUTPUT_BUCKET, env),
            auto_captions=read_flag(Env.AUTO_CAPTIONS, env, default=False),
        )


def _in_range(name: str, value: int, low: int, high: int | None = None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise MissingSetting(
            f"environment variable {name} must be {bound}, got {value}"
        )


@dataclasses.dataclass(frozen=True)
class FrameSize:
    """A largest frame, orientation-free: a portrait 1080x1920 fits 1920x1080."""

    long_side: int
    short_side: int

    @classmethod
    def parse(cls, raw: str) -> FrameSize:
        width, sep, height = raw.strip().lower().partition("x")
        try:
            sides = sorted((int(width), int(height)), reverse=True) if sep else []
        except ValueError:
            sides = []
        if len(sides) != 2 or sides[1] <= 0:
            raise ValueError(
                f"a frame size is WIDTHxHEIGHT, e.g. 3840x2160; got {raw!r}"
            )
        return cls(sides[0], sides[1])

    def fits(self, width: int, height: int) -> bool:
        return (
            max(width, height) <= self.long_side
            and min(width, height) <= self.short_side
        )

    def __str__(self) -> str:
        return f"{self.long_side}x{self.short_side}"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What the FFmpeg worker reads at start. Defaults: the default ladder,
    a heartbeat each 20 s that extends the message and the task's lease by
    60 s, 100 s to finish a job after SIGTERM, the system temp dir, x264's
    veryfast preset, 60 s chunks, and the limits below."""

    table_name: str
    source_bucket: str
    output_bucket: str
    queue_url: str
    ladder: tuple[Rung, ...] = DEFAULT_LADDER
    heartbeat_seconds: int = 20
    #: How long a received job stays hidden and a claimed task stays leased
    #: without a heartbeat: a dead worker's task is taken up again this long
    #: after its last beat.
    visibility_timeout_seconds: int = 60
    #: Kept below ECS's stopTimeout (at most 120 s), so that the worker can
    #: still release the message after abandoning the job.
    stop_timeout_seconds: int = 100
    #: The jobs queue's redrive maxReceiveCount: the delivery after which a
    #: job that keeps failing goes to the DLQ, so its record is failed then.
    max_receive_count: int = 3
    work_dir: str = dataclasses.field(default_factory=tempfile.gettempdir)
    #: veryfast: roughly a third of medium's CPU time per frame, for somewhat
    #: larger files at equal quality; Env.X264_PRESET trades the other way.
    x264_preset: str = "veryfast"
    #: Least time between two progress writes to the record.
    progress_interval_seconds: int = 5
    #: Free space required beyond the download, for renditions and images.
    disk_headroom_bytes: int = 2 * 1024**3
    #: Sources longer than this are encoded in chunks of this length (a
    #: multiple of the 6 s segment) by many workers at once.
    chunk_seconds: int = 60
    #: Whether a PQ or HLG source also gets HEVC Main 10 rungs in its own
    #: range, beside the tone-mapped SDR ladder that every source gets.
    hdr_ladder: bool = False
    #: Limits checked when the source is probed; a source over one FAILS.
    max_duration_seconds: int = 6 * 3600
    max_frame_size: FrameSize = FrameSize(3840, 2160)
    max_frame_rate: int = 240
    #: A task may take this many seconds per second of media it encodes,
    #: plus the allowance, before it is stopped and its video FAILS.
    job_time_factor: float = 10.0
    job_time_allowance_seconds: int = 120
    #: The task's size and price, for the READY record's cost.
    task_vcpu: float = 2.0
    task_memory_mib: int = 4096
    usd_per_vcpu_hour: float = FARGATE_LIST_PRICES["x86_64"][0]
    usd_per_gb_hour: float = FARGATE_LIST_PRICES["x86_64"][1]
    #: A source's first this many audio tracks become audio renditions.
    max_audio_tracks: int = 4
    #: What every audio rendition is normalized to; None leaves it as it is.
    loudness: LoudnessTarget | None = DEFAULT_LOUDNESS

    def time_budget(self, media_seconds: float) -> float:
        """Wall seconds a task that encodes ``media_seconds`` may take."""
        return self.job_time_factor * media_seconds + self.job_time_allowance_seconds

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        ladder = read_str(Env.LADDER, env, default="")
        frame_size = read_str(Env.MAX_FRAME_SIZE, env, default=str(cls.max_frame_size))
        try:
            max_frame_size = FrameSize.parse(frame_size)
        except ValueError as error:
            raise MissingSetting(
                f"environment variable {Env.MAX_FRAME_SIZE}: {error}"
            ) from None
        settings = cls(
            table_name=read_str(Env.TABLE_NAME, env),
            source_bucket=read_str(Env.SOURCE_BUCKET, env),
            output_bucket=read_str(Env.OUTPUT_BUCKET, env),
            queue_url=read_str(Env.JOBS_QUEUE_URL, env),
            ladder=parse_ladder(ladder) if ladder else DEFAULT_LADDER,
            heartbeat_seconds=read_int(
                Env.HEARTBEAT_SECONDS, env, default=cls.heartbeat_seconds
            ),
            visibility_timeout_seconds=read_int(
                Env.VISIBILITY_TIMEOUT_SECONDS,
                env,
                default=cls.visibility_timeout_seconds,
            ),
            stop_timeout_seconds=read_int(
                Env.STOP_TIMEOUT_SECONDS, env, default=cls.stop_timeout_seconds
            ),
            max_receive_count=read_int(
                Env.MAX_RECEIVE_COUNT, env, default=cls.max_receive_count
            ),
            work_dir=read_str(Env.WORK_DIR, env, default=tempfile.gettempdir()),
            x264_preset=read_str(Env.X264_PRESET, env, default=cls.x264_preset),
            progress_interval_seconds=read_int(
                Env.PROGRESS_INTERVAL_SECONDS,
                env,
                default=cls.progress_interval_seconds,
            ),
            chunk_seconds=read_int(Env.CHUNK_SECONDS, env, default=cls.chunk_seconds),
            hdr_ladder=read_flag(Env.HDR_LADDER, env, default=cls.hdr_ladder),
            max_duration_seconds=read_int(
                Env.MAX_DURATION_SECONDS, env, default=cls.max_duration_seconds
            ),
            max_frame_size=max_frame_size,
            max_frame_rate=read_int(
                Env.MAX_FRAME_RATE, env, default=cls.max_frame_rate
            ),
            job_time_factor=read_float(
                Env.JOB_TIME_FACTOR, env, default=cls.job_time_factor
            ),
            job_time_allowance_seconds=read_int(
                Env.JOB_TIME_ALLOWANCE_SECONDS,
                env,
                default=cls.job_time_allowance_seconds,
            ),
            task_vcpu=read_float(Env.TASK_VCPU, env, default=cls.task_vcpu),
            task_memory_mib=read_int(
                Env.TASK_MEMORY_MIB, env, default=cls.task_memory_mib
            ),
            usd_per_vcpu_hour=read_float(
                Env.USD_PER_VCPU_HOUR, env, default=cls.usd_per_vcpu_hour
            ),
            usd_per_gb_hour=read_float(
                Env.USD_PER_GB_HOUR, env, default=cls.usd_per_gb_hour
            ),
            max_audio_tracks=read_int(
                Env.MAX_AUDIO_TRACKS, env, default=cls.max_audio_tracks
            ),
            loudness=read_loudness(env),
        )
        _in_range(Env.MAX_AUDIO_TRACKS, settings.max_audio_tracks, 1)
        _in_range(Env.MAX_RECEIVE_COUNT, settings.max_receive_count, 1, 1000)
        # SQS keeps a message invisible for at most 12 hours.
        _in_range(
            Env.VISIBILITY_TIMEOUT_SECONDS,
            settings.visibility_timeout_seconds,
            2,
            43200,
        )
        _in_range(
            Env.HEARTBEAT_SECONDS,
            settings.heartbeat_seconds,
            1,
            settings.visibility_timeout_seconds - 1,
        )
        _in_range(Env.STOP_TIMEOUT_SECONDS, settings.stop_timeout_seconds, 0)
        _in_range(Env.PROGRESS_INTERVAL_SECONDS, settings.progress_interval_seconds, 0)
        _in_range(Env.CHUNK_SECONDS, settings.chunk_seconds, SEGMENT_SECONDS)
        if settings.chunk_seconds % SEGMENT_SECONDS:
            raise MissingSetting(
                f"environment variable {Env.CHUNK_SECONDS} must be a multiple of "
                f"{SEGMENT_SECONDS}, got {settings.chunk_seconds}"
            )
        _in_range(Env.MAX_DURATION_SECONDS, settings.max_duration_seconds, 1)
        _in_range(Env.MAX_FRAME_RATE, settings.max_frame_rate, 1)
        _in_range(
            Env.JOB_TIME_ALLOWANCE_SECONDS, settings.job_time_allowance_seconds, 0
        )
        for name, value in (
            (Env.JOB_TIME_FACTOR, settings.job_time_factor),
            (Env.TASK_VCPU, settings.task_vcpu),
        ):
            if value <= 0:
                raise MissingSetting(
                    f"environment variable {name} must be above 0, got {value}"
                )
        return settings


#: ``Env.LOUDNESS_TARGET_LUFS`` of a stack with the normalization off.
LOUDNESS_OFF = "off"


def loudness_environment(target: LoudnessTarget | None) -> dict[str, str]:
    """The variables that carry ``target`` to the worker or the ingest
    function (``read_loudness`` reads them)."""
    if target is None:
        return {Env.LOUDNESS_TARGET_LUFS: LOUDNESS_OFF}
    return {
        Env.LOUDNESS_TARGET_LUFS: f"{target.integrated:g}",
        Env.LOUDNESS_TRUE_PEAK_DBTP: f"{target.true_peak:g}",
    }


def read_loudness(env: Mapping[str, str] | None = None) -> LoudnessTarget | None:
    """The audio's loudness target (default -16 LUFS, -1 dBTP); None when
    the stack turned the normalization off."""
    default = DEFAULT_LOUDNESS
    if read_str(Env.LOUDNESS_TARGET_LUFS, env, default="").lower() == LOUDNESS_OFF:
        return None
    target = LoudnessTarget(
        integrated=read_float(
            Env.LOUDNESS_TARGET_LUFS, env, default=default.integrated
        ),
        true_peak=read_float(
            Env.LOUDNESS_TRUE_PEAK_DBTP, env, default=default.true_peak
        ),
    )
    for name, value, (low, high) in (
        (Env.LOUDNESS_TARGET_LUFS, target.integrated, TARGET_LUFS_RANGE),
        (Env.LOUDNESS_TRUE_PEAK_DBTP, target.true_peak, TRUE_PEAK_RANGE),
    ):
        if not low <= value <= high:
            raise MissingSetting(
                f"environment variable {name} must be from {low:g} to {high:g}"
                f"{' or off' if name == Env.LOUDNESS_TARGET_LUFS else ''}, "
                f"got {value:g}"
            )
    return target
