"""Which media type a video file is, from its name: the CLI's own table of
video extensions first (the system's MIME table misses or misnames many,
e.g. ``.ts`` as Qt Linguist text, ``.mts`` and ``.m2ts`` not at all), then
the system's. ``--type`` overrides both."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

#: Video container extensions and the media types S3 and players know them
#: by; the web page reads the same file.
VIDEO_TYPES: dict[str, str] = json.loads(
    Path(__file__).with_name("video_types.json").read_text()
)


def video_type(path: Path) -> str | None:
    """The media type of ``path`` by its extension, or None when unknown."""
    known = VIDEO_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed = mimetypes.guess_type(path.name, strict=False)[0]
    return guessed if guessed and guessed.startswith("video/") else None
