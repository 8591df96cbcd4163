"""S3 in and out: the source download and the output prefix.

Uploads go in dependency order: media (init and segments) and images first,
then the variant playlists that list them, then the master playlist that
lists those, so a player that finds a playlist finds everything it names.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from vod.keys import MASTER_PLAYLIST

#: Playlists are short-lived in caches so that a redone job shows up; media
#: and images never change under a key once READY points at them.
PLAYLIST_CACHE = "max-age=60"
IMMUTABLE_CACHE = "max-age=31536000, immutable"
_HEADERS = {
    ".m3u8": ("application/vnd.apple.mpegurl", PLAYLIST_CACHE),
    ".mp4": ("video/mp4", IMMUTABLE_CACHE),
    ".m4s": ("video/mp4", IMMUTABLE_CACHE),
    ".jpg": ("image/jpeg", IMMUTABLE_CACHE),
    ".vtt": ("text/vtt", IMMUTABLE_CACHE),
}
_UPLOAD_THREADS = 8
_DELETE_BATCH = 1000


class SourceMissing(Exception):
    """The object the job names is not (or no longer) in the bucket."""


def object_headers(name: str) -> tuple[str, str]:
    """(Content-Type, Cache-Control) for an output file; ValueError for a file
    the worker never produces, so nothing is served with a guessed type."""
    suffix = Path(name).suffix.lower()
    if suffix not in _HEADERS:
        raise ValueError(f"no content type for output file {name!r}")
    return _HEADERS[suffix]


def upload_order(names: list[str]) -> list[list[str]]:
    """Batches to upload one after another: media and images, variant
    playlists, then the master playlist alone."""
    ranked: list[list[str]] = [[], [], []]
    for name in sorted(names):
        if name == MASTER_PLAYLIST:
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

    def clear(self, bucket: str, prefix: str) -> int:
        """Delete everything under ``prefix``; returns how many objects."""
        keys = list(self._keys(bucket, prefix))
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            self._s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
        return len(keys)

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> int:
        """Upload every file under ``folder`` to ``prefix`` in upload order;
        returns how many files."""
        names = [
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
        ]
        with concurrent.futures.ThreadPoolExecutor(_UPLOAD_THREADS) as pool:
            for batch in upload_order(names):
                futures = [
                    pool.submit(self._put, folder / name, bucket, prefix + name)
                    for name in batch
                ]
                for future in futures:
                    future.result()
        return len(names)

    def _put(self, path: Path, bucket: str, key: str) -> None:
        content_type, cache_control = object_headers(path.name)
        self._s3.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"ContentType": content_type, "CacheControl": cache_control},
        )

    def _keys(self, bucket: str, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
