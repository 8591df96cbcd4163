"""The videos function, route by route, on payload 2.0 event fixtures against
the moto server."""

from __future__ import annotations

import dataclasses
import json
import uuid
from types import SimpleNamespace

import boto3
import pytest

from lambdas.videos_api import app
from tests.conftest import client, make_bucket, make_table
from tests.test_apigw_events import api_event
from vod.keys import output_prefix, upload_key
from vod.model import Rendition, Status, Video
from vod.repository import VideoRepository
from vod.settings import Env

OWNER = "8c1e4f2a-1b2c-4d3e-9f40-5a6b7c8d9e0f"
OTHER = "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c"
PLAYBACK = "https://d111111abcdef8.cloudfront.net"


@pytest.fixture
def env(aws_env, moto, monkeypatch):
    yield videos_env(
        moto,
        monkeypatch,
        table=make_table(moto),
        source=make_bucket(moto, "source"),
        output=make_bucket(moto, "output"),
    )
    app.api.cache_clear()


def videos_env(moto, monkeypatch, *, table, source, output):
    """The videos function's environment, on the moto server's ``table``
    and buckets, and clients to look at them."""
    for name, value in {
        Env.TABLE_NAME: table,
        Env.SOURCE_BUCKET: source,
        Env.OUTPUT_BUCKET: output,
        Env.PLAYBACK_BASE_URL: PLAYBACK,
    }.items():
        monkeypatch.setenv(name, value)
    app.api.cache_clear()
    return SimpleNamespace(
        source=source,
        output=output,
        s3=client(moto, "s3"),
        videos=VideoRepository(table),
    )


def call(route_key, **parts):
    parts.setdefault("sub", OWNER)
    response = app.handler(api_event(route_key, **parts), None)
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def ok(route_key, **parts):
    status, body = call(route_key, **parts)
    assert status == 200, body
    return body


def add_video(
    env, owner=OWNER, *, video_id=None, created_at="2024-07-24T12:00:00.000Z", **fields
):
    video_id = video_id or str(uuid.uuid4())
    video = Video.new_upload(
        video_id=video_id,
        owner=owner,
        key=upload_key(owner, video_id, "clip.mp4"),
        filename="clip.mp4",
        content_type="video/mp4",
        size=1234,
        upload_id=None,
        expires_at=2_000_000_000,
    )
    video = dataclasses.replace(video, created_at=created_at, **fields)
    env.videos.create(video)
    return video


def test_list_pages_the_callers_videos_newest_first(env):
    mine = [
        add_video(env, created_at=f"2024-07-2{day}T12:00:00.000Z") for day in range(5)
    ]
    add_video(env, OTHER, created_at="2024-07-29T12:00:00.000Z")

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = ok("GET /videos", query=query)
        pages += 1
        assert len(page["videos"]) <= 2
        seen += [video["id"] for video in page["videos"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [video.id for video in reversed(mine)]
    assert pages >= 3
    assert ok("GET /videos", query={})["videos"][0]["id"] == mine[-1].id


def test_a_cursor_from_another_listing_is_a_400(env):
    for day in range(3):
        add_video(env, OTHER, created_at=f"2024-07-2{day}T12:00:00.000Z")
    foreign = ok("GET /videos", sub=OTHER, query={"limit": "1"})["nextCursor"]
    status, body = call("GET /videos", query={"cursor": foreign})
    assert status == 400
    assert body["message"].startswith("cursor")


def test_get_returns_the_public_record_with_playback_urls(env):
    video = add_video(
        env,
        status=Status.READY,
        playback=f"{output_prefix('x')}master.m3u8",
        renditions=(
            Rendition(
                "720p",
                1280,
                720,
                3_000_000,
                "720p.m3u8",
                average_bitrate=2_000_000,
                peak_bitrate=2_800_000,
                psnr=40.5,
            ),
        ),
        upload_id=None,
    )
    body = ok("GET /videos/{id}", path={"id": video.id})
    assert body["id"] == video.id
    assert body["status"] == "READY"
    assert body["playbackUrl"] == f"{PLAYBACK}/videos/x/master.m3u8"
    assert body["renditions"] == [
        {
            "name": "720p",
            "width": 1280,
            "height": 720,
            "bitrate": 3_000_000,
            "averageBitrate": 2_000_000,
            "peakBitrate": 2_800_000,
            "psnr": 40.5,
        }
    ]
    assert "owner" not in body
    assert "key" not in body


def test_patch_changes_title_and_description(env):
    video = add_video(env)
    body = ok(
        "PATCH /videos/{id}",
        path={"id": video.id},
        body={"title": "Lake", "description": ""},
    )
    assert (body["title"], body["description"]) == ("Lake", "")
    stored = env.videos.get(video.id)
    assert stored.title == "Lake"
    assert stored.updated_at > video.updated_at


def test_delete_removes_upload_source_outputs_and_record(env, monkeypatch):
    """Outputs are listed in pages (two keys each here, 1,000 in S3), so a
    delete that read only the first page would leave files behind."""

    def pages_of_two(params, **_):
        params["MaxKeys"] = 2

    session = boto3.session.Session()
    session.events.register("provide-client-params.s3.ListObjectsV2", pages_of_two)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    app.api.cache_clear()

    video_id = str(uuid.uuid4())
    key = upload_key(OWNER, video_id, "clip.mp4")
    upload_id = env.s3.create_multipart_upload(Bucket=env.source, Key=key)["UploadId"]
    video = add_video(env, video_id=video_id, upload_id=upload_id)
    env.s3.put_object(Bucket=env.source, Key=video.key, Body=b"original")
    outputs = [f"{output_prefix(video.id)}{n}.ts" for n in range(5)]
    neighbour = f"{output_prefix(str(uuid.uuid4()))}0.ts"
    for key in [*outputs, neighbour]:
        env.s3.put_object(Bucket=env.output, Key=key, Body=b"segment")

    assert ok("DELETE /videos/{id}", path={"id": video.id}) == {}

    assert env.videos.get(video.id) is None
    assert "Contents" not in env.s3.list_objects_v2(Bucket=env.source)
    remaining = env.s3.list_objects_v2(Bucket=env.output)["Contents"]
    assert [item["Key"] for item in remaining] == [neighbour]
    assert "Uploads" not in env.s3.list_multipart_uploads(Bucket=env.source)
    status, _ = call("DELETE /videos/{id}", path={"id": video.id})
    assert status == 404


def test_a_video_being_transcoded_cannot_be_deleted_yet(env):
    video = add_video(env, status=Status.PROCESSING)
    env.s3.put_object(Bucket=env.source, Key=video.key, Body=b"original")
    status, body = call("DELETE /videos/{id}", path={"id": video.id})
    assert status == 409
    assert "being transcoded" in body["message"]
    assert env.videos.get(video.id) is not None
    assert env.s3.get_object(Bucket=env.source, Key=video.key)["Body"].read() == (
        b"original"
    )


@pytest.mark.parametrize(
    ("route_key", "body"),
    [
        ("GET /videos/{id}", None),
        ("PATCH /videos/{id}", {"title": "mine now"}),
        # Ownership comes first: a bad body does not tell the video exists.
        ("PATCH /videos/{id}", {"owner": "me"}),
        ("PATCH /videos/{id}", {}),
        ("DELETE /videos/{id}", None),
    ],
)
def test_another_users_video_is_404_and_untouched(env, route_key, body):
    video = add_video(env)
    env.s3.put_object(Bucket=env.source, Key=video.key, Body=b"original")
    parts = {"path": {"id": video.id}} | ({"body": body} if body is not None else {})
    status, answer = call(route_key, sub=OTHER, **parts)
    assert (status, answer) == (404, {"message": "video not found"})
    absent = call(route_key, **{**parts, "path": {"id": str(uuid.uuid4())}})
    assert absent == (status, answer)
    assert env.videos.get(video.id) == video
    assert env.s3.head_object(Bucket=env.source, Key=video.key)["ContentLength"] == 8
    assert ok("GET /videos", sub=OTHER)["videos"] == []
