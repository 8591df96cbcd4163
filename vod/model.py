"""The one model of a video record and its status machine.

The upload API, the ingest Lambda, the ffmpeg worker, the MediaConvert status
Lambda and the local runner all import this module; none of them restates a
status, a transition or an attribute name.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from vod.captions import tracks_of
from vod.tasks import retry_state

#: The table's schema, shared by the CDK construct and every reader/writer.
TABLE_PARTITION_KEY = "id"
OWNER_INDEX = "byOwner"
OWNER_INDEX_PARTITION_KEY = "owner"
OWNER_INDEX_SORT_KEY = "created_at"
TTL_ATTRIBUTE = "expires_at"

_T = TypeVar("_T")


class Status(enum.StrEnum):
    UPLOADING = "UPLOADING"
    UPLOADED = "UPLOADED"
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"
    ABORTED = "ABORTED"


#: Every allowed move, defined once. A status missing from a value set may not
#: follow the key. PROCESSING -> PROCESSING is a progress update or a redo
#: after a crashed worker; UPLOADING -> QUEUED is an upload that a browser
#: completed straight against S3, so our complete route never saw it;
#: QUEUED -> READY is a MediaConvert job that finished before it reported any
#: progress.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.UPLOADING: frozenset(
        {Status.UPLOADED, Status.QUEUED, Status.FAILED, Status.ABORTED}
    ),
    Status.UPLOADED: frozenset({Status.QUEUED, Status.FAILED}),
    Status.QUEUED: frozenset({Status.PROCESSING, Status.READY, Status.FAILED}),
    Status.PROCESSING: frozenset({Status.PROCESSING, Status.READY, Status.FAILED}),
    Status.READY: frozenset(),
    Status.FAILED: frozenset(),
    Status.ABORTED: frozenset(),
}

TERMINAL: frozenset[Status] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class UploadMethod(enum.StrEnum):
    """How the original reaches S3, fixed when the upload starts."""

    #: One multipart upload. The API creates it (its ID is on the record from
    #: the start), or a browser does (Uppy 6), and the record takes the first
    #: ID that S3 confirms is the key's.
    MULTIPART = "multipart"
    #: One presigned PutObject.
    PUT = "put"
    #: One browser form POST (a POST policy).
    POST = "post"


class TransitionError(ValueError):
    """A status change that the machine does not allow."""


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: Status, target: Status) -> None:
    if not can_transition(current, target):
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (terminal)"
        raise TransitionError(
            f"a video in {current} cannot move to {target}; allowed: {allowed}"
        )


def sources_of(target: Status) -> frozenset[Status]:
    """The statuses a record may be in for a conditional write to ``target``."""
    return frozenset(s for s, nxt in TRANSITIONS.items() if target in nxt)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Rendition:
    """One rung of the HLS ladder as it was produced."""

    name: str
    width: int
    height: int
    bitrate: int
    playlist: str
    codecs: str = ""
    frame_rate: float = 0.0
    #: Measured, in bit/s: over the whole rendition and of its peak segment.
    average_bitrate: int | None = None
    peak_bitrate: int | None = None
    #: dB against the source, over the frames the worker scored.
    psnr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Rendition:
        return cls(
            name=str(raw["name"]),
            width=int(raw["width"]),
            height=int(raw["height"]),
            bitrate=int(raw["bitrate"]),
            playlist=str(raw["playlist"]),
            codecs=str(raw.get("codecs", "")),
            frame_rate=float(raw.get("frame_rate", 0.0)),
            average_bitrate=_optional(raw.get("average_bitrate"), int),
            peak_bitrate=_optional(raw.get("peak_bitrate"), int),
            psnr=_optional(raw.get("psnr"), float),
        )


@dataclasses.dataclass(frozen=True)
class AudioTrack:
    """One audio rendition as it was produced, the default first: its
    language and NAME, and its EBU R128 loudness (``{"integrated": LUFS,
    "truePeak": dBTP}``, a value left out for silence) in the source and as
    encoded, where they were measured."""

    language: str
    name: str
    playlist: str
    source_loudness: Mapping[str, Any] | None = None
    loudness: Mapping[str, Any] | None = None
    #: Whether its loudness was normalized (not for silence, nor with the
    #: normalization off).
    normalized: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AudioTrack:
        return cls(
            language=str(raw["language"]),
            name=str(raw["name"]),
            playlist=str(raw["playlist"]),
            source_loudness=raw.get("source_loudness"),
            loudness=raw.get("loudness"),
            normalized=bool(raw.get("normalized", False)),
        )

    def to_public(self, *, default: bool) -> dict[str, Any]:
        return {
            "language": self.language,
            "name": self.name,
            "default": default,
            "normalized": self.normalized,
            "sourceLoudness": _loudness(self.source_loudness),
            "loudness": _loudness(self.loudness),
        }


def _loudness(measured: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if measured is None:
        return None
    return {
        "integrated": measured.get("integrated"),
        "truePeak": measured.get("truePeak"),
    }


@dataclasses.dataclass(frozen=True)
class Video:
    """A video record as stored in the table (attribute names are the item's)."""

    id: str
    owner: str
    status: Status
    key: str
    filename: str
    content_type: str
    created_at: str
    updated_at: str
    size: int | None = None
    title: str = ""
    description: str = ""
    upload_id: str | None = None
    upload_method: str | None = None
    #: "SHA256" when S3 verifies every part of the upload by its SHA-256.
    checksum_algorithm: str | None = None
    #: S3's checksum of the whole original (SHA-256 of the parts' SHA-256s,
    #: ``<base64>-<parts>``), for an upload with ``checksum_algorithm``.
    checksum: str | None = None
    #: The ETag of the original that was queued for transcoding.
    source_etag: str | None = None
    progress: int = 0
    error: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    renditions: tuple[Rendition, ...] = ()
    audio_tracks: tuple[AudioTrack, ...] = ()
    playback: str | None = None
    poster: str | None = None
    sprite: str | None = None
    thumbnails: str | None = None
    expires_at: int | None = None
    #: The transcode plan (``vod.plan.TranscodePlan.to_dict``), from probing.
    plan: Mapping[str, Any] | None = None
    #: The work ledger: task name -> entry (``vod.tasks``).
    tasks: Mapping[str, Any] | None = None
    #: Seconds of media encoded so far, over all tasks: the progress.
    encoded: float | None = None
    #: Chunks finished (counted once each, with the task marked done).
    chunks_done: int | None = None
    #: While PROCESSING: how many seconds from the start are playable.
    playable_until: float | None = None
    #: At READY: what the transcode cost (``vod.costs``).
    cost: Mapping[str, Any] | None = None
    #: Caption tracks: language -> ``vod.captions.CaptionTrack`` entry.
    captions: Mapping[str, Any] | None = None
    #: What became of the automatic captions (``autoCaptions``): ``status``
    #: IN_PROGRESS, ADDED, NONE or FAILED, with ``language`` or ``reason``.
    auto_captions: Mapping[str, Any] | None = None

    @classmethod
    def new_upload(
        cls,
        *,
        video_id: str,
        owner: str,
        key: str,
        filename: str,
        content_type: str,
        size: int | None,
        upload_id: str | None,
        expires_at: int,
        upload_method: UploadMethod = UploadMethod.MULTIPART,
        title: str = "",
        checksum_algorithm: str | None = None,
    ) -> Video:
        stamp = now_iso()
        return cls(
            id=video_id,
            owner=owner,
            status=Status.UPLOADING,
            key=key,
            filename=filename,
            content_type=content_type,
            created_at=stamp,
            updated_at=stamp,
            size=size,
            title=title or filename,
            upload_id=upload_id,
            upload_method=str(upload_method),
            checksum_algorithm=checksum_algorithm,
            expires_at=expires_at,
        )

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item (resource-level types; None values are left out)."""
        item: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or value == "" or value == ():
                continue
            if field.name in ("renditions", "audio_tracks"):
                value = [to_dynamo(r.to_dict()) for r in value]
            elif field.name == "status":
                value = str(value)
            item[field.name] = to_dynamo(value)
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Video:
        names = {f.name for f in dataclasses.fields(cls)}
        raw = {k: from_dynamo(v) for k, v in item.items() if k in names}
        raw["status"] = Status(raw["status"])
        raw["renditions"] = tuple(
            Rendition.from_dict(r) for r in raw.get("renditions", ())
        )
        raw["audio_tracks"] = tuple(
            AudioTrack.from_dict(t) for t in raw.get("audio_tracks", ())
        )
        for int_field in (
            "size",
            "progress",
            "width",
            "height",
            "expires_at",
            "chunks_done",
        ):
            if raw.get(int_field) is not None:
                raw[int_field] = int(raw[int_field])
        for float_field in ("duration", "encoded", "playable_until"):
            if raw.get(float_field) is not None:
                raw[float_field] = float(raw[float_field])
        return cls(**raw)

    @property
    def percent(self) -> int:
        """Transcode progress, 0-100: from the seconds encoded while the
        workers run (never 100 before READY), else as stored."""
        if self.status is Status.READY:
            return 100
        if self.encoded is not None and self.duration:
            return max(0, min(99, int(self.encoded / self.duration * 100)))
        return self.progress

    @property
    def chunk_count(self) -> int:
        chunks = (self.plan or {}).get("chunks") or ()
        return len(chunks) if len(chunks) > 1 else 0

    @property
    def playable(self) -> bool:
        """READY, or PROCESSING with the start of every rendition published."""
        return self.status is Status.READY or (
            self.status is Status.PROCESSING and bool(self.playable_until)
        )

    def to_public(
        self, playback_base: str = "", *, now: float | None = None
    ) -> dict[str, Any]:
        """What the API returns: camelCase, no internal upload or work
        bookkeeping. ``now`` (epoch seconds) decides whether a worker's lease
        ran out, i.e. whether the transcode is waiting to be retried."""
        base = playback_base.rstrip("/")
        retry = retry_state(self.tasks, time.time() if now is None else now)
        chunks = self.chunk_count

        def url(path: str | None) -> str | None:
            if path is None:
                return None
            return f"{base}/{path}" if base else path

        return {
            "id": self.id,
            "status": str(self.status),
            "title": self.title,
            "description": self.description,
            "filename": self.filename,
            "contentType": self.content_type,
            "size": self.size,
            "checksum": self.checksum,
            "progress": self.percent,
            "error": self.error,
            "retrying": self.status is Status.PROCESSING and retry.retrying,
            "attempts": retry.attempts,
            "chunks": (
                {"total": chunks, "done": self.chunks_done or 0} if chunks else None
            ),
            "playable": self.playable,
            "playableUntil": (
                self.playable_until if self.status is Status.PROCESSING else None
            ),
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "renditions": [
                {
                    "name": r.name,
                    "width": r.width,
                    "height": r.height,
                    "bitrate": r.bitrate,
                    "averageBitrate": r.average_bitrate,
                    "peakBitrate": r.peak_bitrate,
                    "psnr": r.psnr,
                }
                for r in self.renditions
            ],
            "audioTracks": [
                track.to_public(default=not index)
                for index, track in enumerate(self.audio_tracks)
            ],
            "playbackPath": self.playback if self.playable else None,
            "playbackUrl": url(self.playback) if self.playable else None,
            "posterUrl": url(self.poster),
            "spriteUrl": url(self.sprite),
            "thumbnailsUrl": url(self.thumbnails),
            "cost": dict(self.cost) if self.cost else None,
            "captions": [track.public() for track in tracks_of(self.captions)],
            "autoCaptions": dict(self.auto_captions) if self.auto_captions else None,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


def _optional(value: Any, kind: Callable[[Any], _T]) -> _T | None:
    return None if value is None else kind(value)


def to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def status_values(statuses: Iterable[Status]) -> list[str]:
    return sorted(str(s) for s in statuses)
