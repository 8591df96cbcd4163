"""The fast presigner must produce exactly botocore's URLs: any difference in
encoding or ordering is a signature S3 rejects."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import random
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from lambdas.upload_api import signer as signer_module
from lambdas.upload_api.signer import S3Presigner
from local.motoserver import SETUP_CREDENTIALS
from tests.conftest import client, make_bucket

BUCKET = "vod-uploads-1234"
LOOPBACK = "http://127.0.0.1:4566"
WITH_TOKEN = ReadOnlyCredentials(
    "ASIAFAKEFAKEFAKE0001", "fake/secret+key=0001", "FwoGZXIvYXdzE+/fake=token"
)
WITHOUT_TOKEN = ReadOnlyCredentials("AKIAFAKEFAKEFAKE0002", "fake-secret-0002", None)
KEY_ALPHABET = "abcXYZ019-_./ ~+%=&?#:;,@$!'()*[]ü日é🎬\\"


# client method -> (HTTP method, whether it takes UploadId, whether PartNumber)
OPERATIONS = {
    "put_object": ("PUT", False, False),
    "create_multipart_upload": ("POST", False, False),
    "upload_part": ("PUT", True, True),
    "list_parts": ("GET", True, False),
    "complete_multipart_upload": ("POST", True, False),
    "abort_multipart_upload": ("DELETE", True, False),
    "get_object": ("GET", False, False),
    "head_object": ("HEAD", False, False),
}


@functools.cache
def botocore_client(region, endpoint_url, credentials, addressing_style):
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4", s3={"addressing_style": addressing_style}
        ),
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    )


def botocore_url(
    *,
    region,
    endpoint_url,
    credentials,
    operation,
    params,
    expires_in,
    now,
    bucket=BUCKET,
    addressing_style=None,
):
    """What botocore signs at ``now``, in the style botocore picks for a
    custom endpoint and the virtual-hosted style on AWS."""
    style = addressing_style or ("auto" if endpoint_url else "virtual")
    s3 = botocore_client(region, endpoint_url, credentials, style)
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        return s3.generate_presigned_url(
            operation, Params={"Bucket": bucket, **params}, ExpiresIn=expires_in
        )


def our_presigner(region, endpoint_url, credentials, bucket=BUCKET):
    return S3Presigner(
        bucket=bucket,
        region=region,
        endpoint_url=endpoint_url,
        credentials=lambda: credentials,
    )


def random_text(rng, alphabet, low, high):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def random_case(rng, operation):
    """Botocore Params and our (method, key, query) for one operation, with
    the sub-resources in a random order (both keep the caller's order)."""
    method, takes_upload_id, takes_part = OPERATIONS[operation]
    key = random_text(rng, KEY_ALPHABET, 1, 60)
    sub_resources = []
    if takes_part:
        part = rng.randint(1, 10_000)
        sub_resources.append(("PartNumber", "partNumber", part, str(part)))
    if takes_upload_id:
        upload_id = random_text(rng, "AZaz09._-+/= ~", 1, 120)
        sub_resources.append(("UploadId", "uploadId", upload_id, upload_id))
    rng.shuffle(sub_resources)
    params = {"Key": key, **{name: value for name, _, value, _ in sub_resources}}
    query = {name: text for _, name, _, text in sub_resources}
    if operation == "create_multipart_upload":
        query = {"uploads": ""}
    return params, method, key, query


def random_now(rng):
    start = dt.datetime(2024, 1, 1)
    return start + dt.timedelta(seconds=rng.randrange(3 * 365 * 24 * 3600))


def test_matches_botocore_over_random_requests():
    rng = random.Random(20240506)
    grid = itertools.product(
        OPERATIONS,
        ["us-east-1", "eu-west-1"],
        [None, LOOPBACK],
        [WITH_TOKEN, WITHOUT_TOKEN],
        [1, 900, 3600, 604_800],
        range(4),
    )
    checked = 0
    for operation, region, endpoint_url, credentials, expires_in, _ in grid:
        params, method, key, query = random_case(rng, operation)
        now = random_now(rng)
        expected = botocore_url(
            region=region,
            endpoint_url=endpoint_url,
            credentials=credentials,
            operation=operation,
            params=params,
            expires_in=expires_in,
            now=now,
        )
        ours = our_presigner(region, endpoint_url, credentials).presign(
            method, key, query=query, expires_in=expires_in, now=now
        )
        assert ours == expected, (operation, region, endpoint_url, key, query, now)
        checked += 1
    assert checked == 1024


@pytest.mark.parametrize(
    ("region", "endpoint_url", "expected_prefix"),
    [
        ("us-east-1", None, f"https://{BUCKET}.s3.amazonaws.com/uploads/a%20b.mp4?"),
        (
            "eu-west-1",
            None,
            f"https://{BUCKET}.s3.eu-west-1.amazonaws.com/uploads/a%20b.mp4?",
        ),
        ("eu-west-1", LOOPBACK, f"{LOOPBACK}/{BUCKET}/uploads/a%20b.mp4?"),
    ],
)
def test_url_shape(region, endpoint_url, expected_prefix):
    url = our_presigner(region, endpoint_url, WITH_TOKEN).presign(
        "PUT",
        "uploads/a b.mp4",
        query={"partNumber": "3", "uploadId": "u"},
        expires_in=900,
    )
    assert url.startswith(expected_prefix + "partNumber=3&uploadId=u&X-Amz-")
    assert "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=" in url


@pytest.mark.parametrize(
    ("region", "endpoint_url", "bucket"),
    [
        ("us-east-1", None, "dotted.bucket.name"),
        ("eu-west-1", None, "dotted.bucket.name"),
        ("eu-west-1", "https://s3.example.test/base/", BUCKET),
        ("us-east-1", "http://127.0.0.1:80", BUCKET),
        ("us-east-1", "http://LocalHost:4566/", BUCKET),
        ("us-east-1", "http://[::1]:4566", BUCKET),
    ],
)
def test_matches_botocore_on_other_endpoint_shapes(region, endpoint_url, bucket):
    now = dt.datetime(2025, 2, 3, 4, 5, 6)
    params = {"Key": "a/b c+d", "PartNumber": 12, "UploadId": "id+/="}
    expected = botocore_url(
        region=region,
        endpoint_url=endpoint_url,
        credentials=WITH_TOKEN,
        operation="upload_part",
        params=params,
        expires_in=3600,
        now=now,
        bucket=bucket,
    )
    ours = our_presigner(region, endpoint_url, WITH_TOKEN, bucket=bucket).presign(
        "PUT",
        "a/b c+d",
        query={"partNumber": "12", "uploadId": "id+/="},
        expires_in=3600,
        now=now,
    )
    assert ours == expected


def test_aware_now_is_signed_as_utc():
    presigner = our_presigner("eu-west-1", None, WITH_TOKEN)
    naive_utc = dt.datetime(2025, 1, 1, 23, 30)
    aware = naive_utc.replace(tzinfo=dt.UTC).astimezone(
        dt.timezone(dt.timedelta(hours=2))
    )
    assert presigner.presign("GET", "k", expires_in=60, now=aware) == (
        presigner.presign("GET", "k", expires_in=60, now=naive_utc)
    )


@pytest.fixture
def derivations(monkeypatch):
    """Counts signing-key derivations."""
    calls = []
    derive = signer_module._signing_key

    def counting(*args):
        calls.append(args)
        return derive(*args)

    monkeypatch.setattr(signer_module, "_signing_key", counting)
    return calls


def test_signing_key_is_derived_once_a_day_and_again_on_rotation(derivations):
    current = [WITH_TOKEN]
    presigner = S3Presigner(
        bucket=BUCKET, region="eu-west-1", credentials=lambda: current[0]
    )
    morning = dt.datetime(2025, 3, 4, 0, 0, 1)

    def upload_part_url(part, now):
        return presigner.presign(
            "PUT",
            "uploads/x.mp4",
            query={"partNumber": str(part), "uploadId": "u"},
            expires_in=900,
            now=now,
        )

    urls = [upload_part_url(n, morning + dt.timedelta(minutes=n)) for n in range(500)]
    assert len(derivations) == 1
    assert len(set(urls)) == 500

    rotated = ReadOnlyCredentials(
        "ASIAFAKEFAKEFAKE0003", "rotated-secret", "rotated/token"
    )
    current[0] = rotated
    url = upload_part_url(1, morning)
    assert len(derivations) == 2
    assert "X-Amz-Security-Token=rotated%2Ftoken&" in url
    assert url == botocore_url(
        region="eu-west-1",
        endpoint_url=None,
        credentials=rotated,
        operation="upload_part",
        params={"Key": "uploads/x.mp4", "PartNumber": 1, "UploadId": "u"},
        expires_in=900,
        now=morning,
    )

    current[0] = rotated._replace(token="refreshed-token")
    assert "X-Amz-Security-Token=refreshed-token&" in upload_part_url(1, morning)
    assert len(derivations) == 3

    upload_part_url(1, morning + dt.timedelta(hours=23, minutes=59))
    assert len(derivations) == 3
    next_day = upload_part_url(1, morning + dt.timedelta(days=1))
    assert len(derivations) == 4
    assert derivations[-1][1] == "20250305"
    assert "%2F20250305%2Feu-west-1%2Fs3%2Faws4_request&" in next_day


@pytest.mark.parametrize("expires_in", [0, -1, 604_801])
def test_expiry_out_of_range_is_rejected(expires_in):
    presigner = our_presigner("eu-west-1", None, WITH_TOKEN)
    with pytest.raises(ValueError, match="expires_in"):
        presigner.presign("GET", "k", expires_in=expires_in)


def test_from_boto3_session_prefers_the_s3_endpoint_variable(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1111")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", LOOPBACK)
    session = boto3.session.Session(
        aws_access_key_id=WITH_TOKEN.access_key,
        aws_secret_access_key=WITH_TOKEN.secret_key,
        aws_session_token=WITH_TOKEN.token,
        region_name="eu-west-1",
    )
    presigner = S3Presigner.from_boto3_session(bucket=BUCKET, session=session)
    now = dt.datetime(2025, 6, 7, 8, 9, 10)
    assert presigner.presign(
        "POST", "k", query={"uploads": ""}, expires_in=60, now=now
    ) == botocore_url(
        region="eu-west-1",
        endpoint_url=LOOPBACK,
        credentials=WITH_TOKEN,
        operation="create_multipart_upload",
        params={"Key": "k"},
        expires_in=60,
        now=now,
    )


def test_presigned_upload_part_round_trip(aws_env):
    bucket = make_bucket(aws_env)
    s3 = client(aws_env, "s3")
    key = "uploads/owner/video/my video+1.mp4"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    body = b"part one of a video"

    presigner = S3Presigner.from_boto3_session(bucket=bucket)
    url = presigner.presign(
        "PUT",
        key,
        query={"partNumber": "1", "uploadId": upload_id},
        expires_in=300,
    )
    assert url.startswith(f"{aws_env.url}/{bucket}/")
    assert SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"] in url
    response = requests.put(url, data=body, timeout=10)

    assert response.status_code == 200, response.text
    etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag is an MD5
    assert response.headers["ETag"] == etag
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, etag)]


@pytest.mark.parametrize(
    ("operation", "params", "method", "query", "headers"),
    [
        (
            "upload_part",
            {
                "Key": "a/b c.mp4",
                "UploadId": "u+1",
                "PartNumber": 3,
                "ContentLength": 7,
            },
            "PUT",
            {"uploadId": "u+1", "partNumber": "3"},
            {"content-length": "7"},
        ),
        (
            "put_object",
            {"Key": "k.mp4", "IfNoneMatch": "*"},
            "PUT",
            None,
            {"If-None-Match": "*"},
        ),
    ],
)
def test_signed_headers_match_botocore(operation, params, method, query, headers):
    """A header in the signature binds the request to it: a part's exact
    length, or a PUT only onto a free key."""
    now = dt.datetime(2025, 6, 7, 8, 9, 10)
    presigner = our_presigner("eu-west-1", LOOPBACK, WITH_TOKEN)
    ours = presigner.presign(
        method, params["Key"], query=query, headers=headers, expires_in=60, now=now
    )
    theirs = botocore_url(
        region="eu-west-1",
        endpoint_url=LOOPBACK,
        credentials=WITH_TOKEN,
        operation=operation,
        params=params,
        expires_in=60,
        now=now,
    )
    assert parse_qs(urlsplit(ours).query) == parse_qs(urlsplit(theirs).query)
    assert ours.split("?")[0] == theirs.split("?")[0]
