"""Output headers, upload order, and the S3 adapter on moto."""

from __future__ import annotations

import boto3
import pytest
import requests
from botocore.config import Config

from tests.conftest import client, make_bucket
from worker.publish import Publisher
from worker.storage import (
    GROWING_PLAYLIST_CACHE,
    IMMUTABLE_CACHE,
    PLAYLIST_CACHE,
    PreconditionFailed,
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


def test_upload_puts_headers_and_the_master_last(moto, tmp_path):
    bucket = make_bucket(moto, "outputs")
    s3 = client(moto, "s3")
    files = {}
    for name in ("master.m3u8", "a/index.m3u8", "a/seg_00000.m4s", "a/seg_00001.m4s"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        files[f"videos/v1/{name}"] = path
    recording = RecordingS3(s3)
    assert Storage(recording).upload(bucket, files) == 4
    assert recording.uploaded[-2:] == [
        "videos/v1/a/index.m3u8",
        "videos/v1/master.m3u8",
    ]
    head = s3.head_object(Bucket=bucket, Key="videos/v1/a/seg_00001.m4s")
    assert head["ContentType"] == "video/mp4"
    assert head["CacheControl"] == IMMUTABLE_CACHE


def test_a_growing_playlist_only_ever_grows(moto):
    """Writers race to extend a playlist; a late, shorter one never wins,
    and nothing replaces the final version."""
    bucket = make_bucket(moto, "outputs")
    s3 = client(moto, "s3")
    publisher = Publisher(Storage(s3), bucket)
    key = "videos/v1/a/index.m3u8"

    def written():
        head = s3.head_object(Bucket=bucket, Key=key)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        return body, head["Metadata"]["vod-version"], head["CacheControl"]

    publisher.media_playlists(
        "videos/v1/", {"a/index.m3u8": "two"}, version=2, final=False
    )
    assert written() == ("two", "2", GROWING_PLAYLIST_CACHE)
    publisher.media_playlists(
        "videos/v1/", {"a/index.m3u8": "one"}, version=1, final=False
    )
    assert written()[0] == "two"
    publisher.media_playlists(
        "videos/v1/", {"a/index.m3u8": "final"}, version=5, final=True
    )
    assert written() == ("final", "5", PLAYLIST_CACHE)
    publisher.media_playlists(
        "videos/v1/", {"a/index.m3u8": "four"}, version=4, final=False
    )
    assert written()[0] == "final"


def test_a_conditional_write_on_a_changed_object_is_refused(moto):
    bucket = make_bucket(moto, "outputs")
    s3 = client(moto, "s3")
    storage = Storage(s3)
    storage.put(bucket, "videos/v1/master.m3u8", b"first", if_absent=True)
    with pytest.raises(PreconditionFailed):
        storage.put(bucket, "videos/v1/master.m3u8", b"again", if_absent=True)
    head = storage.head(bucket, "videos/v1/master.m3u8")
    assert head is not None
    storage.put(bucket, "videos/v1/master.m3u8", b"second", if_match=head.etag)
    with pytest.raises(PreconditionFailed):
        storage.put(bucket, "videos/v1/master.m3u8", b"stale", if_match=head.etag)
    assert storage.get(bucket, "videos/v1/master.m3u8") == b"second"
    assert storage.head(bucket, "videos/v1/nothing.m3u8") is None


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
    signer = Storage(
        boto3.client(
            "s3",
            endpoint_url=moto.url,
            region_name=moto.region,
            aws_access_key_id="AKIAFAKE",
            aws_secret_access_key="fake",
            config=Config(signature_version="s3v4"),
        )
    )
    url = signer.url(bucket, "uploads/o/v/a.mp4", expires_seconds=600)
    assert "X-Amz-Signature=" in url
    assert (
        requests.get(url, headers={"Range": "bytes=1-2"}, timeout=10).content == b"23"
    )
