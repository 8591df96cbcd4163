"""Output headers, upload order, and the S3 adapter on moto."""

from __future__ import annotations

import pytest

from tests.conftest import client, make_bucket
from worker.storage import (
    IMMUTABLE_CACHE,
    PLAYLIST_CACHE,
    SourceMissing,
    Storage,
    object_headers,
    upload_order,
)


@pytest.mark.parametrize(
    ("name", "content_type", "cache"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        ("720p/index.m3u8", "application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        ("720p/init_1.mp4", "video/mp4", IMMUTABLE_CACHE),
        ("720p/seg_00000.m4s", "video/mp4", IMMUTABLE_CACHE),
        ("poster.jpg", "image/jpeg", IMMUTABLE_CACHE),
        ("thumbnails.vtt", "text/vtt", IMMUTABLE_CACHE),
    ],
)
def test_object_headers(name, content_type, cache):
    assert object_headers(name) == (content_type, cache)


def test_unknown_output_files_are_refused():
    with pytest.raises(ValueError, match=r"ffmpeg\.log"):
        object_headers("ffmpeg.log")


def test_upload_order_is_media_then_variant_playlists_then_master():
    names = [
        "master.m3u8",
        "360p/index.m3u8",
        "360p/seg_00000.m4s",
        "audio/index.m3u8",
        "poster.jpg",
        "360p/init_1.mp4",
    ]
    assert upload_order(names) == [
        ["360p/init_1.mp4", "360p/seg_00000.m4s", "poster.jpg"],
        ["360p/index.m3u8", "audio/index.m3u8"],
        ["master.m3u8"],
    ]


class RecordingS3:
    """The real moto client, with the order of uploads written down."""

    def __init__(self, s3):
        self._s3 = s3
        self.uploaded = []

    def upload_file(self, path, bucket, key, ExtraArgs):
        self._s3.upload_file(path, bucket, key, ExtraArgs=ExtraArgs)
        self.uploaded.append(key)

    def __getattr__(self, name):
        return getattr(self._s3, name)


def test_upload_tree_puts_headers_and_the_master_last(moto, tmp_path):
    bucket = make_bucket(moto, "outputs")
    s3 = client(moto, "s3")
    for name in ("master.m3u8", "a/index.m3u8", "a/seg_00000.m4s", "a/seg_00001.m4s"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    recording = RecordingS3(s3)
    assert Storage(recording).upload_tree(tmp_path, bucket, "videos/v1/") == 4
    assert recording.uploaded[-2:] == [
        "videos/v1/a/index.m3u8",
        "videos/v1/master.m3u8",
    ]
    head = s3.head_object(Bucket=bucket, Key="videos/v1/a/seg_00001.m4s")
    assert head["ContentType"] == "video/mp4"
    assert head["CacheControl"] == IMMUTABLE_CACHE


def test_clear_deletes_only_the_prefix(moto):
    bucket = make_bucket(moto, "outputs")
    s3 = client(moto, "s3")
    for key in ("videos/v1/a.m4s", "videos/v1/b/c.m4s", "videos/v10/keep.m4s"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert Storage(s3).clear(bucket, "videos/v1/") == 2
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["videos/v10/keep.m4s"]


def test_size_and_missing_source(moto, tmp_path):
    bucket = make_bucket(moto, "uploads")
    s3 = client(moto, "s3")
    s3.put_object(Bucket=bucket, Key="uploads/o/v/a.mp4", Body=b"12345")
    storage = Storage(s3)
    assert storage.size(bucket, "uploads/o/v/a.mp4") == 5
    storage.download(bucket, "uploads/o/v/a.mp4", tmp_path / "a.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == b"12345"
    with pytest.raises(SourceMissing):
        storage.size(bucket, "uploads/o/v/gone.mp4")
