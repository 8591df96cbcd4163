"""S3 in and out: the source (its size, a download, or a URL that ffmpeg
reads ranges of) and the video's output folder.

Outputs go up in dependency order: media (init and segments) and images
first, then the media playlists that list them, then the master playlist
that lists those, so a player that finds a playlist finds everything it
names. Playlists that grow while a chunked video is encoded are replaced
only by a longer version (a conditional write on the ETag).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from vod.keys import MASTER_PLAYLIST

#: Playlists are short-lived in caches so that a redone job shows up; a
#: playlist that grows while a chunked video is encoded lives 2 s, so a
#: player reloading it each segment sees the new segments. Media and images
#: never change under a key once written.
PLAYLIST_CACHE = "max-age=60"
GROWING_PLAYLIST_CACHE = "max-age=2"
IMMUTABLE_CACHE = "max-age=31536000, immutable"
_HEADERS = {
    ".m3u8": ("application/vnd.apple.mpegurl", PLAYLIST_CACHE),
    ".mp4": ("video/mp4", IMMUTABLE_CACHE),
    ".m4s": ("video/mp4", IMMUTABLE_CACHE),
    ".jpg": ("image/jpeg", IMMUTABLE_CACHE),
    ".vtt": ("text/vtt", IMMUTABLE_CACHE),
    # A chunk's notes for the stitch (its keyframe ranges), deleted at READY.
    ".json": ("application/json", "no-store"),
}
_UPLOAD_THREADS = 8
_DELETE_BATCH = 1000


class SourceMissing(Exception):
    """The object the job names is not (or no longer) in the bucket."""


class PreconditionFailed(Exception):
    """A conditional write found the object changed (or present)."""


@dataclasses.dataclass(frozen=True)
class Head:
    etag: str
    metadata: Mapping[str, str]


def object_headers(name: str) -> tuple[str, str]:
    """(Content-Type, Cache-Control) for an output file; ValueError for a file
    the worker never produces, so nothing is served with a guessed type."""
    suffix = Path(name).suffix.lower()
    if suffix not in _HEADERS:
        raise ValueError(f"no content type for output file {name!r}")
    return _HEADERS[suffix]


def upload_order(names: Iterable[str]) -> list[list[str]]:
    """Batches to upload one after another: media and images, media
    playlists, then the master playlist alone."""
    ranked: list[list[str]] = [[], [], []]
    for name in sorted(names):
        if name.rsplit("/", 1)[-1] == MASTER_PLAYLIST:
            ranked[2].append(name)
        elif name.endswith(".m3u8"):
            ranked[1].append(name)
        else:
            ranked[0].append(name)
    return [batch for batch in ranked if batch]


class Storage:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def size(self, bucket: str, key: str) -> int:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _status(error) == 404:
                raise SourceMissing(f"s3://{bucket}/{key}") from None
            raise
        return int(head["ContentLength"])

    def download(self, bucket: str, key: str, path: Path) -> None:
        self._s3.download_file(bucket, key, str(path))

    def url(self, bucket: str, key: str, *, expires_seconds: int) -> str:
        """A presigned GET that ffmpeg reads ranges of (SigV4: the client is
        made with ``signature_version="s3v4"``)."""
        url: str = self._s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=max(60, min(expires_seconds, 7 * 24 * 3600)),
        )
        return url

    def upload(self, bucket: str, files: Mapping[str, Path]) -> int:
        """Upload ``files`` (key -> local path) in upload order; returns how
        many."""
        with concurrent.futures.ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
            for batch in upload_order(files):
                futures = [
                    pool.submit(self._put_file, files[key], bucket, key)
                    for key in batch
                ]
                for future in futures:
                    future.result()
        return len(files)

    def _put_file(self, path: Path, bucket: str, key: str) -> None:
        content_type, cache_control = object_headers(key)
        self._s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"ContentType": content_type, "CacheControl": cache_control},
        )

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
        cache_control: str | None = None,
    ) -> None:
        """One object from memory; with ``if_match`` (an ETag) or
        ``if_absent`` it is written only if the object is still that version
        (or absent), else PreconditionFailed."""
        content_type, default_cache = object_headers(key)
        conditions: dict[str, str] = {}
        if if_match is not None:
            conditions["IfMatch"] = if_match
        elif if_absent:
            conditions["IfNoneMatch"] = "*"
        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                CacheControl=cache_control or default_cache,
                Metadata=dict(metadata or {}),
                **conditions,
            )
        except ClientError as error:
            if _status(error) in (409, 412):
                raise PreconditionFailed(f"s3://{bucket}/{key}") from None
            raise

    def head(self, bucket: str, key: str) -> Head | None:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _status(error) in (403, 404):
                return None
            raise
        return Head(etag=str(head["ETag"]), metadata=head.get("Metadata", {}))

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            self._s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
