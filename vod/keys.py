"""Object key layout, shared by the buckets' rules, the API, the ingest
Lambda and the worker. The server makes every key; a client never does."""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: Originals land here; the lifecycle rule, the S3 notification filter and the
#: upload grants are all scoped to this prefix.
UPLOADS_PREFIX = "uploads/"
#: Transcoded HLS, poster and sprites, one folder per video.
OUTPUTS_PREFIX = "videos/"
MASTER_PLAYLIST = "master.m3u8"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_FILENAME = 120


def sanitize_filename(filename: str) -> str:
    """A file name safe in a key and in a URL; never empty, never a path."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = (
        unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    )
    cleaned = _UNSAFE.sub("-", ascii_name).strip("-.")
    if len(cleaned) > _MAX_FILENAME:
        stem, dot, ext = cleaned.rpartition(".")
        if dot and len(ext) <= 10:
            cleaned = stem[: _MAX_FILENAME - len(ext) - 1] + "." + ext
        else:
            cleaned = cleaned[:_MAX_FILENAME]
    return cleaned or "video"


_SAFE_OWNER = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def owner_segment(owner: str) -> str:
    """The owner's folder: the token's ``sub`` when it is key-safe (Cognito's
    are UUIDs), else a digest of it, so that no issuer's ``sub`` can add a
    path segment. Ownership is still decided by the record, not the key."""
    if _SAFE_OWNER.match(owner):
        return owner
    return "u-" + hashlib.sha256(owner.encode("utf-8")).hexdigest()[:40]


def upload_key(owner: str, video_id: str, filename: str) -> str:
    return (
        f"{UPLOADS_PREFIX}{owner_segment(owner)}/{video_id}/"
        f"{sanitize_filename(filename)}"
    )


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """``(owner, video_id)`` of a key we made, or None for any other key."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    parts = key[len(UPLOADS_PREFIX) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1]


def output_prefix(video_id: str) -> str:
    return f"{OUTPUTS_PREFIX}{video_id}/"
