"""The transcoding job message: the SQS body the ingest Lambda sends and the
FFmpeg worker reads. One definition, so the two cannot drift."""

from __future__ import annotations

import dataclasses
import json
from typing import Any


@dataclasses.dataclass(frozen=True)
class JobMessage:
    video_id: str
    bucket: str
    key: str
    etag: str | None = None
    #: The S3 event's sequencer, which orders events for the same key.
    sequencer: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "videoId": self.video_id,
                "bucket": self.bucket,
                "key": self.key,
                "etag": self.etag,
                "sequencer": self.sequencer,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, body: str) -> JobMessage:
        """Parse a message body; raises ValueError saying what is wrong."""
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
        return cls(
            video_id=required["videoId"],
            bucket=required["bucket"],
            key=required["key"],
            etag=optional["etag"],
            sequencer=optional["sequencer"],
        )
