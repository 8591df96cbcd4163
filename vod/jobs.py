"""The transcoding job message: the SQS body the ingest Lambda and the
planning worker send and every worker reads. One definition, so that the
senders, the workers and the dead-letter consumer cannot drift.

A job names one task of a video:

- ``video``: the job the ingest Lambda sends for an upload. Its worker probes
  the source, then either encodes it in one run or plans chunks and sends
  one ``chunk`` job per chunk and one ``audio`` job;
- ``chunk``: every rung of one time range of the source (``chunk`` is its
  index in the plan stored on the record);
- ``audio``: the audio rendition of the whole source.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any


class TaskKind(enum.StrEnum):
    VIDEO = "video"
    CHUNK = "chunk"
    AUDIO = "audio"


#: Task names, the keys of the record's ``tasks`` map.
VIDEO_TASK = "video"
AUDIO_TASK = "audio"
#: Publishing a chunked video once its last task is done: the playlists,
#: the sprite, then READY. It has no job of its own: the worker that
#: finishes the last task runs it, or, if that worker dies, whichever worker
#: gets one of the finished tasks' jobs again.
STITCH_TASK = "stitch"


def chunk_task(index: int) -> str:
    """``chunk-0003``: names sort in chunk order."""
    return f"chunk-{index:04d}"


@dataclasses.dataclass(frozen=True)
class JobMessage:
    video_id: str
    bucket: str
    key: str
    etag: str | None = None
    #: The S3 event's sequencer, which orders events for the same key.
    sequencer: str | None = None
    kind: TaskKind = TaskKind.VIDEO
    #: The chunk's index in the plan; set exactly when ``kind`` is CHUNK.
    chunk: int | None = None

    def __post_init__(self) -> None:
        if (self.kind is TaskKind.CHUNK) != (self.chunk is not None):
            raise ValueError("a chunk job needs its chunk index, and only it has one")

    @property
    def task(self) -> str:
        """The name of the task this job runs, as the record's ``tasks`` map
        keys it."""
        if self.kind is TaskKind.CHUNK:
            assert self.chunk is not None
            return chunk_task(self.chunk)
        return self.kind.value

    def for_task(self, kind: TaskKind, chunk: int | None = None) -> JobMessage:
        """The job of another task of the same video and source."""
        return dataclasses.replace(self, kind=kind, chunk=chunk)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "videoId": self.video_id,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "sequencer": self.sequencer,
            "task": self.kind.value,
        }
        if self.chunk is not None:
            body["chunk"] = self.chunk
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> JobMessage:
        """Parse a message body; raises ValueError saying what is wrong. A body
        without ``task`` is a ``video`` job (what ingest sent before chunks)."""
        try:
            raw: Any = json.loads(body)
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"job message is not JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ValueError(
                f"job message must be a JSON object, got {type(raw).__name__}"
            )
        required = {}
        for name in ("videoId", "bucket", "key"):
            value = raw.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"job message needs a non-empty string {name!r}")
            required[name] = value
        optional = {}
        for name in ("etag", "sequencer"):
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"job message field {name!r} must be a string or null")
            optional[name] = value
        try:
            kind = TaskKind(raw.get("task", TaskKind.VIDEO.value))
        except ValueError:
            allowed = ", ".join(k.value for k in TaskKind)
            raise ValueError(
                f"job message field 'task' must be one of {allowed}, "
                f"got {raw.get('task')!r}"
            ) from None
        chunk = raw.get("chunk")
        if kind is TaskKind.CHUNK:
            if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 0:
                raise ValueError("a chunk job needs a non-negative integer 'chunk'")
        elif chunk is not None:
            raise ValueError(f"a {kind.value} job has no 'chunk'")
        return cls(
            video_id=required["videoId"],
            bucket=required["bucket"],
            key=required["key"],
            etag=optional["etag"],
            sequencer=optional["sequencer"],
            kind=kind,
            chunk=chunk,
        )
