"""Which media type a video file is, from its name: the CLI's own table of
video extensions first (the system's MIME table misses or misnames many,
e.g. ``.ts`` as Qt Linguist text, ``.mts`` and ``.m2ts`` not at all), then
the system's. ``--type`` overrides both."""

from __future__ import annotations

import mimetypes
from pathlib import Path

#: Video container extensions and the media types S3 and players know them by.
VIDEO_TYPES = {
    ".3g2": "video/3gpp2",
    ".3gp": "video/3gpp",
    ".asf": "video/x-ms-asf",
    ".avi": "video/x-msvideo",
    ".dv": "video/x-dv",
    ".f4v": "video/x-f4v",
    ".flv": "video/x-flv",
    ".m1v": "video/mpeg",
    ".m2t": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".m2v": "video/mpeg",
    ".m4v": "video/x-m4v",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".mp4": "video/mp4",
    ".mpe": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".mts": "video/mp2t",
    ".ogv": "video/ogg",
    ".qt": "video/quicktime",
    ".ts": "video/mp2t",
    ".vob": "video/mpeg",
    ".webm": "video/webm",
    ".wmv": "video/x-ms-wmv",
    ".y4m": "video/x-yuv4mpeg",
}


def video_type(path: Path) -> str | None:
    """The media type of ``path`` by its extension, or None when unknown."""
    known = VIDEO_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed = mimetypes.guess_type(path.name, strict=False)[0]
    return guessed if guessed and guessed.startswith("video/") else None
