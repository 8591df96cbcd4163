"""The upload function, route by route, on payload 2.0 event fixtures
against the moto server: records, S3 state and signed URLs that S3 accepts."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse

from lambdas.upload_api import app
from lambdas.upload_api.parts import MAX_PARTS_PER_CALL
from local.lambda_runtime import LambdaContext
from tests.conftest import client, make_bucket, make_table
from tests.test_apigw_events import api_event
from vod.model import Status
from vod.repository import VideoRepository
from vod.settings import Env

MIB = 1024 * 1024
OWNER = "8c1e4f2a-1b2c-4d3e-9f40-5a6b7c8d9e0f"
OTHER = "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c"
MAX_UPLOAD = 100 * 1024**3
HTTP_TIMEOUT = 10


@pytest.fixture
def env(aws_env, moto, monkeypatch):
    """A fresh table and source bucket, and a cold start of the function."""
    table, bucket = make_table(moto), make_bucket(moto, "source")
    for name, value in {
        Env.TABLE_NAME: table,
        Env.SOURCE_BUCKET: bucket,
        Env.MAX_UPLOAD_BYTES: str(MAX_UPLOAD),
        Env.UPLOAD_TTL_SECONDS: "3600",
    }.items():
        monkeypatch.setenv(name, value)
    app.api.cache_clear()
    yield SimpleNamespace(
        table=table,
        bucket=bucket,
        s3=client(moto, "s3"),
        videos=VideoRepository(table),
    )
    app.api.cache_clear()


def call(route_key, **parts):
    """Invoke the handler on the route's fixture; (status, parsed body)."""
    parts.setdefault("sub", OWNER)
    response = app.handler(
        api_event(route_key, **parts),
        LambdaContext("upload", aws_request_id="req-1", deadline=time.monotonic() + 30),
    )
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def ok(route_key, **parts):
    status, body = call(route_key, **parts)
    assert status == 200, body
    return body


def create(size=12 * MIB, sub=OWNER, **extra):
    return ok(
        "POST /s3/multipart",
        sub=sub,
        body={"filename": "My Holiday.mp4", "type": "video/mp4", "size": size, **extra},
    )


def put_part(url, data):
    response = requests.put(url, data=data, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def sign_part(upload, number):
    return ok(
        "GET /s3/multipart/{uploadId}/{partNumber}",
        path={"uploadId": upload["uploadId"], "partNumber": str(number)},
        query={"key": upload["key"]},
    )["url"]


def complete(upload, parts, sub=OWNER):
    return call(
        "POST /s3/multipart/{uploadId}/complete",
        sub=sub,
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"]},
        body={"parts": parts},
    )


# POST /s3/multipart


def test_create_makes_the_key_the_record_and_the_s3_upload(env):
    before = int(time.time())
    upload = create(size=25 * MIB, metadata={"title": "Lake"})

    assert upload["key"] == f"uploads/{OWNER}/{upload['videoId']}/My-Holiday.mp4"
    assert (upload["partSize"], upload["partCount"]) == (8 * MIB, 4)
    video = env.videos.get(upload["videoId"])
    assert video.status is Status.UPLOADING
    assert (video.owner, video.key, video.upload_id) == (
        OWNER,
        upload["key"],
        upload["uploadId"],
    )
    assert (video.title, video.size, video.content_type) == (
        "Lake",
        25 * MIB,
        "video/mp4",
    )
    assert before + 3600 <= video.expires_at <= int(time.time()) + 3600
    assert upload["expiresAt"].endswith("Z")
    open_uploads = env.s3.list_multipart_uploads(Bucket=env.bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in open_uploads] == [
        (upload["key"], upload["uploadId"])
    ]


def test_create_without_a_size_gets_the_minimum_part_and_no_count(env):
    upload = create(size=None)
    assert upload["partSize"] == 8 * MIB
    assert "partCount" not in upload


def test_create_can_sign_the_first_parts_in_the_same_answer(env):
    upload = create(size=25 * MIB, signParts=400)

    signed = upload["signedParts"]
    assert [p["partNumber"] for p in signed["parts"]] == [1, 2, 3, 4]
    assert signed["expiresAt"].endswith("Z")
    for entry in signed["parts"]:
        query = parse_qs(urlsplit(entry["url"]).query)
        assert query["partNumber"] == [str(entry["partNumber"])]
        assert query["uploadId"] == [upload["uploadId"]]
    etag = put_part(signed["parts"][1]["url"], b"part two")
    parts = env.s3.list_parts(
        Bucket=env.bucket, Key=upload["key"], UploadId=upload["uploadId"]
    )["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(2, etag)]


def test_create_signs_at_most_one_sign_calls_worth_of_parts(env):
    assert "signedParts" not in create(size=25 * MIB)
    assert len(create(size=25 * MIB, signParts=2)["signedParts"]["parts"]) == 2
    huge = create(size=MAX_UPLOAD, signParts=10_000)["signedParts"]["parts"]
    assert [p["partNumber"] for p in huge] == list(range(1, MAX_PARTS_PER_CALL + 1))


def test_huge_sizes_get_parts_big_enough_to_stay_under_10000(env):
    upload = create(size=MAX_UPLOAD)
    assert upload["partSize"] == -(-MAX_UPLOAD // 10_000)
    assert upload["partCount"] == 10_000


# GET /s3/multipart/{uploadId}/{partNumber}, batch, sign


def test_a_signed_part_url_uploads_the_part(env):
    upload = create()
    body = ok(
        "GET /s3/multipart/{uploadId}/{partNumber}",
        path={"uploadId": upload["uploadId"], "partNumber": "2"},
        query={"key": upload["key"]},
    )
    assert body["expires"] == 3600
    query = parse_qs(urlsplit(body["url"]).query)
    assert query["partNumber"] == ["2"]
    assert query["uploadId"] == [upload["uploadId"]]
    assert query["X-Amz-Expires"] == ["3600"]
    etag = put_part(body["url"], b"part two")
    parts = env.s3.list_parts(
        Bucket=env.bucket, Key=upload["key"], UploadId=upload["uploadId"]
    )["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(2, etag)]


def test_batch_signs_each_requested_part(env):
    upload = create(size=30 * MIB)
    body = ok(
        "GET /s3/multipart/{uploadId}/batch",
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"], "partNumbers": "1,3,4"},
    )
    urls = body["presignedUrls"]
    assert sorted(urls) == ["1", "3", "4"]
    for number, url in urls.items():
        assert parse_qs(urlsplit(url).query)["partNumber"] == [number]
    put_part(urls["3"], b"three")


def test_sign_pages_part_urls(env):
    upload = create(size=30 * MIB)
    body = ok(
        "POST /s3/multipart/{uploadId}/sign",
        path={"uploadId": upload["uploadId"]},
        body={"key": upload["key"], "partNumbers": [4, 1]},
    )
    assert [p["partNumber"] for p in body["parts"]] == [4, 1]
    assert body["expiresAt"].endswith("Z")
    put_part(body["parts"][0]["url"], b"four")


def test_a_full_page_of_part_urls_stays_under_a_megabyte_with_a_session_token(
    env, monkeypatch
):
    """A Lambda role's session token makes each URL ~2 KB; the page size is
    chosen so that the largest signing response stays below 1 MB."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", base64.b64encode(b"t" * 1000).decode())
    app.api.cache_clear()
    upload = create(size=MAX_UPLOAD)
    numbers = list(range(10_001 - MAX_PARTS_PER_CALL, 10_001))
    response = app.handler(
        api_event(
            "POST /s3/multipart/{uploadId}/sign",
            sub=OWNER,
            path={"uploadId": upload["uploadId"]},
            body={"key": upload["key"], "partNumbers": numbers},
        ),
        None,
    )
    assert response["statusCode"] == 200
    assert "X-Amz-Security-Token" in response["body"]
    assert len(response["body"].encode()) < 1_000_000


# GET /s3/multipart/{uploadId}


def test_list_parts_returns_every_part_across_pages(env, monkeypatch):
    """S3 pages ListParts by 1,000; moto pages by MaxParts, so pages of two
    show that the route follows NextPartNumberMarker to the end."""

    def pages_of_two(params, **_):
        params["MaxParts"] = 2

    session = boto3.session.Session()
    session.events.register("provide-client-params.s3.ListParts", pages_of_two)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    app.api.cache_clear()
    upload = create(size=40 * MIB)
    etags = {
        n: put_part(sign_part(upload, n), f"part {n}".encode()) for n in (1, 2, 3, 5, 4)
    }

    parts = ok(
        "GET /s3/multipart/{uploadId}",
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"]},
    )
    assert parts == [
        {"PartNumber": n, "Size": len(f"part {n}"), "ETag": etags[n]}
        for n in range(1, 6)
    ]


# POST /s3/multipart/{uploadId}/complete


def test_complete_assembles_the_object_and_marks_the_record_uploaded(env):
    upload = create(size=9 * MIB)
    first, last = b"a" * (8 * MIB), b"b" * MIB
    parts = [
        {
            "PartNumber": 1,
            "ETag": put_part(sign_part(upload, 1), first),
            "Size": 8 * MIB,
        },
        {"PartNumber": 2, "ETag": put_part(sign_part(upload, 2), last)},
    ]
    status, body = complete(upload, parts)

    assert status == 200, body
    assert body["key"] == upload["key"]
    assert body["bucket"] == env.bucket
    assert body["videoId"] == upload["videoId"]
    assert body["location"].endswith(f"/{env.bucket}/{upload['key']}")
    stored = env.s3.get_object(Bucket=env.bucket, Key=upload["key"])["Body"].read()
    assert stored == first + last
    video = env.videos.get(upload["videoId"])
    assert video.status is Status.UPLOADED
    assert (video.size, video.upload_id, video.expires_at) == (
        9 * MIB,
        upload["uploadId"],
        None,
    )


def test_a_retried_complete_answers_the_same(env):
    upload = create(size=MIB)
    parts = [{"PartNumber": 1, "ETag": put_part(sign_part(upload, 1), b"x")}]
    first = complete(upload, parts)
    again = complete(upload, parts)
    assert first == again
    assert first[0] == 200


def s3_answers_no_such_upload(monkeypatch):
    """Make CompleteMultipartUpload answer as S3 does for an upload that is
    gone (moto 5.2.5 fails with a 500 there instead)."""

    def no_such_upload(**_):
        parsed = {
            "Error": {"Code": "NoSuchUpload", "Message": "The upload does not exist"},
            "ResponseMetadata": {"HTTPStatusCode": 404, "HTTPHeaders": {}},
        }
        return AWSResponse("http://s3", 404, {}, None), parsed

    session = boto3.session.Session()
    session.events.register("before-call.s3.CompleteMultipartUpload", no_such_upload)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    app.api.cache_clear()


def test_a_complete_s3_already_did_succeeds_when_the_object_exists(env, monkeypatch):
    """The first try completed in S3 but its answer was lost before the
    record was written: the retry meets NoSuchUpload, and the object."""
    upload = create(size=MIB)
    env.s3.put_object(Bucket=env.bucket, Key=upload["key"], Body=b"whole")
    s3_answers_no_such_upload(monkeypatch)
    status, body = complete(upload, [{"PartNumber": 1, "ETag": '"abc"'}])
    assert status == 200, body
    video = env.videos.get(upload["videoId"])
    assert (video.status, video.size) == (Status.UPLOADED, 5)


def test_a_complete_of_an_upload_gone_without_an_object_is_404(env, monkeypatch):
    upload = create(size=MIB)
    s3_answers_no_such_upload(monkeypatch)
    status, body = complete(upload, [{"PartNumber": 1, "ETag": '"abc"'}])
    assert (status, body["message"]) == (404, "upload not found")
    assert env.videos.get(upload["videoId"]).status is Status.UPLOADING


def test_a_complete_retried_after_s3_finished_succeeds(env):
    upload = create(size=MIB)
    parts = [{"PartNumber": 1, "ETag": put_part(sign_part(upload, 1), b"x")}]
    env.s3.complete_multipart_upload(
        Bucket=env.bucket,
        Key=upload["key"],
        UploadId=upload["uploadId"],
        MultipartUpload={"Parts": parts},
    )
    status, body = complete(upload, parts)
    assert status == 200, body
    assert env.videos.get(upload["videoId"]).status is Status.UPLOADED


def test_complete_after_the_record_moved_on_succeeds(env):
    """The S3 event of a finished upload may queue the record first."""
    upload = create(size=MIB)
    parts = [{"PartNumber": 1, "ETag": put_part(sign_part(upload, 1), b"x")}]
    env.videos.transition(upload["videoId"], Status.QUEUED)
    status, _ = complete(upload, parts)
    assert status == 200
    assert env.videos.get(upload["videoId"]).status is Status.QUEUED


def test_parts_s3_refuses_are_a_400_naming_parts(env):
    upload = create(size=12 * MIB)
    parts = [
        {"PartNumber": n, "ETag": put_part(sign_part(upload, n), b"tiny")}
        for n in (1, 2)
    ]
    status, body = complete(upload, parts)
    assert status == 400
    assert body["message"].startswith("parts: S3 refused them (EntityTooSmall")
    wrong_etag = [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]
    status, body = complete(upload, wrong_etag)
    assert status == 400
    assert "InvalidPart" in body["message"]


def test_complete_of_an_aborted_upload_is_409(env):
    upload = create(size=MIB)
    ok(
        "DELETE /s3/multipart/{uploadId}",
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"]},
    )
    status, body = complete(upload, [{"PartNumber": 1, "ETag": '"abc"'}])
    assert status == 409
    assert "aborted" in body["message"]


# DELETE /s3/multipart/{uploadId}


def test_abort_ends_the_s3_upload_and_marks_the_record_aborted(env):
    upload = create()
    parts = {"path": {"uploadId": upload["uploadId"]}, "query": {"key": upload["key"]}}
    assert ok("DELETE /s3/multipart/{uploadId}", **parts) == {}
    assert env.videos.get(upload["videoId"]).status is Status.ABORTED
    assert "Uploads" not in env.s3.list_multipart_uploads(Bucket=env.bucket)
    assert ok("DELETE /s3/multipart/{uploadId}", **parts) == {}
    status, body = call("GET /s3/multipart/{uploadId}", **parts)
    assert status == 409
    assert "ABORTED" in body["message"]


def test_a_completed_upload_cannot_be_aborted(env):
    upload = create(size=MIB)
    complete(upload, [{"PartNumber": 1, "ETag": put_part(sign_part(upload, 1), b"x")}])
    status, _ = call(
        "DELETE /s3/multipart/{uploadId}",
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"]},
    )
    assert status == 409
    assert env.videos.get(upload["videoId"]).status is Status.UPLOADED


# GET /s3/params


def test_params_is_a_post_policy_fixing_key_type_and_size(env):
    body = ok(
        "GET /s3/params",
        query={
            "filename": "clip.mov",
            "type": "video/quicktime",
            "metadata[title]": "Clip",
        },
    )
    assert body["method"] == "POST"
    # A form that writes a whole object is good for minutes, not the hour.
    assert body["expires"] == 600
    fields = body["fields"]
    video_id = fields["key"].split("/")[2]
    assert fields["key"] == f"uploads/{OWNER}/{video_id}/clip.mov"
    assert fields["Content-Type"] == "video/quicktime"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 5 * 1024**3] in conditions
    assert {"key": fields["key"]} in conditions
    assert {"Content-Type": "video/quicktime"} in conditions
    assert {"bucket": env.bucket} in conditions
    video = env.videos.get(video_id)
    assert (video.status, video.title, video.upload_id) == (
        Status.UPLOADING,
        "Clip",
        None,
    )
    response = requests.post(
        body["url"], data=fields, files={"file": b"movie"}, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 201, response.text
    assert (
        env.s3.get_object(Bucket=env.bucket, Key=fields["key"])["Body"].read()
        == b"movie"
    )


# POST /s3/sign (Uppy 6 signRequest)


def sign(sub=OWNER, **request):
    return call("POST /s3/sign", sub=sub, body=request)


def test_sign_put_object_ignores_the_key_and_makes_a_record(env):
    status, body = sign(method="PUT", key="../../other/abc-clip.mp4")
    assert status == 200, body
    video_id = body["key"].split("/")[2]
    assert body["key"] == f"uploads/{OWNER}/{video_id}/abc-clip.mp4"
    video = env.videos.get(video_id)
    assert (video.status, video.content_type) == (Status.UPLOADING, "video/mp4")
    # Uppy sends the headers the URL was signed with.
    assert body["headers"] == {"if-none-match": "*"}
    response = requests.put(
        body["url"], data=b"clip", headers=body["headers"], timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200
    assert env.s3.head_object(Bucket=env.bucket, Key=body["key"])["ContentLength"] == 4
    # The same URL cannot replace the upload while it is still valid.
    again = requests.put(
        body["url"], data=b"longer clip", headers=body["headers"], timeout=HTTP_TIMEOUT
    )
    assert again.status_code == 412
    assert env.s3.head_object(Bucket=env.bucket, Key=body["key"])["ContentLength"] == 4


def test_sign_runs_a_whole_multipart_upload_straight_against_s3(env):
    status, created = sign(method="POST", key="clip.webm", contentType="video/webm")
    assert status == 200, created
    key = created["key"]
    assert key.startswith(f"uploads/{OWNER}/")
    assert key.endswith("/clip.webm")
    xml = requests.post(created["url"], timeout=HTTP_TIMEOUT).text
    upload_id = xml.split("<UploadId>")[1].split("</UploadId>")[0]

    _, part = sign(method="PUT", key=key, uploadId=upload_id, partNumber=1)
    etag = put_part(part["url"], b"webm bytes")
    _, listing = sign(method="GET", key=key, uploadId=upload_id)
    assert etag in requests.get(listing["url"], timeout=HTTP_TIMEOUT).text
    _, finish = sign(method="POST", key=key, uploadId=upload_id)
    body = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    )
    assert (
        requests.post(finish["url"], data=body, timeout=HTTP_TIMEOUT).status_code == 200
    )
    assert env.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read() == b"webm bytes"
    # Completion goes straight to S3; the S3 event moves the record on.
    assert env.videos.get(key.split("/")[2]).status is Status.UPLOADING


def test_sign_abort_marks_the_record_aborted_and_aborts_in_s3(env):
    _, created = sign(method="POST", key="clip.mp4")
    xml = requests.post(created["url"], timeout=HTTP_TIMEOUT).text
    upload_id = xml.split("<UploadId>")[1].split("</UploadId>")[0]
    status, body = sign(method="DELETE", key=created["key"], uploadId=upload_id)
    assert status == 200
    assert set(body) == {"url"}
    assert requests.delete(body["url"], timeout=HTTP_TIMEOUT).status_code == 204
    assert env.videos.get(created["key"].split("/")[2]).status is Status.ABORTED


def test_sign_never_outlives_the_configured_expiry(env):
    _, short = sign(method="POST", key="a.mp4", expiresIn=60)
    _, long = sign(method="POST", key="a.mp4", expiresIn=86_400)
    _, single = sign(method="PUT", key="a.mp4", expiresIn=86_400)
    assert parse_qs(urlsplit(short["url"]).query)["X-Amz-Expires"] == ["60"]
    assert parse_qs(urlsplit(long["url"]).query)["X-Amz-Expires"] == ["3600"]
    # A single PUT writes the whole object: minutes, not the hour.
    assert parse_qs(urlsplit(single["url"]).query)["X-Amz-Expires"] == ["600"]


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "DELETE", "key": "clip.mp4"},
        {"method": "GET", "key": "clip.mp4"},
        {"method": "HEAD", "key": "clip.mp4"},
        {"method": "PATCH", "key": "clip.mp4", "uploadId": "u"},
        {"method": "PUT", "key": "clip.mp4", "uploadId": "u"},
        {"method": "PUT", "key": "clip.mp4", "partNumber": 1},
        {"method": "GET", "key": "clip.mp4", "uploadId": "u", "partNumber": 1},
    ],
)
def test_sign_refuses_every_other_s3_request(env, request_):
    status, body = sign(**request_)
    assert status == 400
    assert body["message"].startswith("method: ")


def test_sign_refuses_other_buckets(env):
    status, body = sign(method="PUT", key="clip.mp4", bucket="someone-elses")
    assert status == 400
    assert body["message"].startswith("bucket")


def test_per_user_limits_answer_429_naming_the_limit(env, monkeypatch):
    monkeypatch.setenv(Env.MAX_UPLOADS_IN_FLIGHT, "2")
    monkeypatch.setenv(Env.MAX_VIDEOS_PER_OWNER, "3")
    app.api.cache_clear()
    first, second = create(), create()
    status, body = call(
        "POST /s3/multipart",
        body={"filename": "c.mp4", "type": "video/mp4"},
    )
    assert status == 429
    assert "2 uploads in progress" in body["message"]
    assert "maxUploadsInFlightPerUser" in body["message"]
    # Other users have limits of their own.
    create(sub=OTHER)
    # An aborted upload is no longer in flight: one more may start ...
    ok(
        "DELETE /s3/multipart/{uploadId}",
        path={"uploadId": first["uploadId"]},
        query={"key": first["key"]},
    )
    third = create()
    assert third["videoId"] not in (first["videoId"], second["videoId"])
    # ... but the user now keeps three videos, the most they may.
    ok(
        "DELETE /s3/multipart/{uploadId}",
        path={"uploadId": second["uploadId"]},
        query={"key": second["key"]},
    )
    for route, parts in (
        ("POST /s3/multipart", {"body": {"filename": "d.mp4", "type": "video/mp4"}}),
        ("GET /s3/params", {"query": {"filename": "d.mp4", "type": "video/mp4"}}),
        ("POST /s3/sign", {"body": {"method": "PUT", "key": "d.mp4"}}),
    ):
        status, body = call(route, **parts)
        assert status == 429, (route, body)
        assert "you have 3 videos" in body["message"]
        assert "maxVideosPerUser" in body["message"]
