"""The S3 gateway in front of the session moto server, driven over real HTTP:
what it refuses must be what S3 refuses, and what it lets through must reach
moto intact."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from local.iam import AccessControl, AccessKey, Principal
from local.motoserver import SETUP_CREDENTIALS
from local.s3_gateway import S3Gateway, match_cors_rule
from local.sigv4_verify import Credential, PostGrant, S3Error
from tests.conftest import client, make_bucket

ACCESS_KEY = SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"]
SECRET = SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
APP_ORIGIN = "http://app.localhost:5173"
TIMEOUT = 30
CONDITION_FAILED = "Invalid according to Policy: Policy Condition failed: "


class Clock:
    """The gateway's clock, movable to make signatures expire."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def gateway(moto, clock):
    with S3Gateway(upstream=moto.url, secrets={ACCESS_KEY: SECRET}, clock=clock) as gw:
        yield gw


@pytest.fixture
def s3(moto):
    """Direct to moto: to set up and to see what really landed."""
    return client(moto, "s3")


@pytest.fixture
def signer(gateway, moto):
    """Signs URLs and policies for the gateway, as the upload API does."""
    return signer_for(gateway, moto, ACCESS_KEY, SECRET)


@pytest.fixture
def bucket(moto):
    return make_bucket(moto, "gateway")


def signer_for(gateway, moto, access_key, secret, signature_version="s3v4"):
    return boto3.client(
        "s3",
        endpoint_url=gateway.url,
        region_name=moto.region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        config=Config(signature_version=signature_version),
    )


def xml_fields(response: requests.Response) -> dict[str, str]:
    assert response.headers["Content-Type"] == "application/xml"
    document = ET.fromstring(response.content)  # noqa: S314 - our own gateway's answer
    return {child.tag: child.text or "" for child in document}


def keys_in(s3, bucket: str) -> list[str]:
    return [
        item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    ]


def presigned_put(signer, bucket, key, expires=60):
    return signer.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
    )


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 - S3's ETag is an MD5


# --- presigned URLs ---------------------------------------------------------


def test_presigned_put_and_get_go_through_with_the_etag(signer, s3, bucket):
    key = "uploads/owner 1/clip ü!(1).mp4"
    content = b"frame" * 1000

    put = requests.put(
        presigned_put(signer, bucket, key), data=content, timeout=TIMEOUT
    )

    assert put.status_code == 200
    assert put.headers["ETag"] == md5_etag(content)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
    url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
    )
    got = requests.get(url, timeout=TIMEOUT)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["ETag"] == md5_etag(content)


def test_a_streamed_30_mib_part_goes_through_and_completes(signer, s3, bucket):
    key = "uploads/big.mp4"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    url = signer.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": 1},
        ExpiresIn=60,
    )
    part = bytes(range(256)) * (30 * 1024 * 1024 // 256)

    started = time.monotonic()
    response = requests.put(url, data=part, timeout=TIMEOUT)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.headers["ETag"] == md5_etag(part)
    assert elapsed < 15
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": response.headers["ETag"]}]
        },
    )
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(part)


def test_a_chunked_request_body_is_forwarded(signer, s3, bucket):
    pieces = [b"first piece ", b"\x00" * (3 * 1024 * 1024), b"last piece"]

    response = requests.put(
        presigned_put(signer, bucket, "uploads/chunked"),
        data=iter(pieces),
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    assert s3.get_object(Bucket=bucket, Key="uploads/chunked")[
        "Body"
    ].read() == b"".join(pieces)


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        (timedelta(minutes=2), "Request has expired"),
        (timedelta(hours=-1), "Request is not yet valid"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_presigned_url_outside_its_validity_is_refused(
    signer, s3, bucket, clock, skew, message
):
    url = presigned_put(signer, bucket, "uploads/late.mp4", expires=60)
    clock.offset = skew

    response = requests.put(url, data=b"late", timeout=TIMEOUT)

    assert response.status_code == 403
    error = xml_fields(response)
    assert (error["Code"], error["Message"]) == ("AccessDenied", message)
    assert keys_in(s3, bucket) == []


def test_an_expired_url_names_its_expiry(signer, bucket, clock):
    url = presigned_put(signer, bucket, "uploads/late.mp4", expires=1)
    clock.offset = timedelta(seconds=5)

    error = xml_fields(requests.put(url, data=b"late", timeout=TIMEOUT))

    assert error["X-Amz-Expires"] == "1"
    assert error["Expires"] < error["ServerTime"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda url: url.replace("X-Amz-Signature=", "X-Amz-Signature=0"),
            id="signature",
        ),
        pytest.param(
            lambda url: url.replace("/uploads/mine", "/uploads/theirs"), id="key"
        ),
        pytest.param(
            lambda url: url.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
            id="expiry",
        ),
    ],
)
def test_a_tampered_presigned_url_is_refused(signer, s3, bucket, tamper):
    url = tamper(presigned_put(signer, bucket, "uploads/mine.mp4"))

    response = requests.put(url, data=b"forged", timeout=TIMEOUT)

    assert response.status_code == 403
    assert xml_fields(response)["Code"] == "SignatureDoesNotMatch"
    assert keys_in(s3, bucket) == []


def test_a_url_signed_with_an_unknown_key_is_refused(gateway, moto, s3, bucket):
    stranger = signer_for(gateway, moto, "AKIAUNKNOWN000000000", "not-our-secret")

    response = requests.put(
        presigned_put(stranger, bucket, "uploads/x"), data=b"x", timeout=TIMEOUT
    )

    assert response.status_code == 403
    error = xml_fields(response)
    assert (error["Code"], error["AWSAccessKeyId"]) == (
        "InvalidAccessKeyId",
        "AKIAUNKNOWN000000000",
    )
    assert keys_in(s3, bucket) == []


def test_a_sigv2_presigned_url_is_refused_as_s3_does_for_new_buckets(
    gateway, moto, s3, bucket
):
    legacy = signer_for(gateway, moto, ACCESS_KEY, SECRET, signature_version="s3")
    url = presigned_put(legacy, bucket, "uploads/v2")
    assert "AWSAccessKeyId=" in url

    response = requests.put(url, data=b"v2", timeout=TIMEOUT)

    assert response.status_code == 400
    assert xml_fields(response)["Code"] == "InvalidRequest"
    assert keys_in(s3, bucket) == []


def test_dropping_the_algorithm_does_not_make_a_url_unchecked(signer, s3, bucket):
    url = presigned_put(signer, bucket, "uploads/x").replace(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&", ""
    )

    response = requests.put(url, data=b"x", timeout=TIMEOUT)

    assert response.status_code == 400
    assert xml_fields(response)["Code"] == "AuthorizationQueryParametersError"
    assert keys_in(s3, bucket) == []


def test_header_signed_sdk_requests_are_forwarded_untouched(signer, s3, bucket):
    stored = signer.put_object(Bucket=bucket, Key="sdk/object", Body=b"sdk bytes")

    assert stored["ETag"] == md5_etag(b"sdk bytes")
    assert (
        signer.get_object(Bucket=bucket, Key="sdk/object")["Body"].read()
        == b"sdk bytes"
    )
    assert keys_in(s3, bucket) == ["sdk/object"]


# --- who signed, and what their role allows -------------------------------

READS_UPLOADS = {
    "Effect": "Allow",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::*/uploads/*",
}
LISTS_UPLOADS = {
    "Effect": "Allow",
    "Action": "s3:ListBucket",
    "Resource": "arn:aws:s3:::*",
    "Condition": {"StringLike": {"s3:prefix": ["uploads/*"]}},
}


@pytest.fixture
def access():
    return AccessControl([], setup=AccessKey(ACCESS_KEY, SECRET))


@pytest.fixture
def guarded(moto, access):
    """A gateway that judges each call by its signer's statements."""
    with S3Gateway(
        upstream=moto.url, secrets=access.secret_for, authorize=access.authorize
    ) as gw:
        yield gw


def client_as(gateway, moto, access, *statements):
    key = access.issue(Principal.assumed_role("tester", "session", statements))
    return signer_for(gateway, moto, key.access_key_id, key.secret_access_key)


def error_of(call, **params) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_an_anonymous_request_is_refused(gateway, s3, bucket):
    s3.put_object(Bucket=bucket, Key="uploads/x.mp4", Body=b"x")
    url = f"{gateway.url}/{bucket}/uploads"

    for response in (
        requests.get(f"{url}/x.mp4", timeout=TIMEOUT),
        requests.put(f"{url}/y.mp4", data=b"y", timeout=TIMEOUT),
    ):
        assert response.status_code == 403
        assert xml_fields(response)["Code"] == "AccessDenied"
    assert keys_in(s3, bucket) == ["uploads/x.mp4"]


def test_a_request_signed_with_a_wrong_secret_is_refused(gateway, moto, s3, bucket):
    forger = signer_for(gateway, moto, ACCESS_KEY, f"not-{SECRET}")

    header_signed = error_of(
        forger.put_object, Bucket=bucket, Key="uploads/f.mp4", Body=b"f"
    )
    presigned = requests.put(
        presigned_put(forger, bucket, "uploads/f.mp4"), data=b"f", timeout=TIMEOUT
    )

    assert header_signed == (403, "SignatureDoesNotMatch")
    assert presigned.status_code == 403
    assert xml_fields(presigned)["Code"] == "SignatureDoesNotMatch"
    assert keys_in(s3, bucket) == []


def test_an_unsigned_amz_header_on_a_presigned_url_is_refused(signer, s3, bucket):
    response = requests.put(
        presigned_put(signer, bucket, "uploads/acl.mp4"),
        data=b"x",
        headers={"x-amz-acl": "public-read"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 403
    error = xml_fields(response)
    assert (error["Code"], error["HeadersNotSigned"]) == ("AccessDenied", "x-amz-acl")
    assert keys_in(s3, bucket) == []


def test_a_call_the_role_does_not_allow_is_refused_naming_it(
    guarded, moto, access, s3, bucket
):
    reader = client_as(guarded, moto, access, READS_UPLOADS)
    post = presigned_post(reader, bucket)

    header_signed = error_of(
        reader.put_object, Bucket=bucket, Key="uploads/new.mp4", Body=b"x"
    )
    posted = post_upload(post, b"video")

    assert header_signed == (403, "AccessDenied")
    assert posted.status_code == 403
    assert xml_fields(posted)["Message"] == (
        "User: arn:aws:sts::123456789012:assumed-role/tester/session is not "
        "authorized to perform: s3:PutObject on resource: "
        f"arn:aws:s3:::{bucket}/uploads/owner-1/clip.mp4 because no "
        "identity-based policy allows the s3:PutObject action"
    )
    assert keys_in(s3, bucket) == []


def test_a_missing_key_is_404_only_to_a_caller_that_may_list_it(
    guarded, moto, access, s3, bucket
):
    s3.put_object(Bucket=bucket, Key="uploads/here.mp4", Body=b"x")
    reader = client_as(guarded, moto, access, READS_UPLOADS)
    lister = client_as(guarded, moto, access, READS_UPLOADS, LISTS_UPLOADS)
    missing = {"Bucket": bucket, "Key": "uploads/gone.mp4"}

    for caller in (reader, lister):
        assert (
            caller.head_object(Bucket=bucket, Key="uploads/here.mp4")["ContentLength"]
            == 1
        )
    assert error_of(reader.head_object, **missing) == (403, "403")
    assert error_of(reader.get_object, **missing) == (403, "AccessDenied")
    assert error_of(lister.head_object, **missing) == (404, "404")
    assert error_of(lister.get_object, **missing) == (404, "NoSuchKey")
    for caller, status in ((reader, 403), (lister, 404)):
        url = caller.generate_presigned_url("get_object", Params=missing)
        assert requests.get(url, timeout=TIMEOUT).status_code == status


# --- POST policy uploads ----------------------------------------------------


def presigned_post(signer, bucket, *, fields=None, conditions=None, max_size=1024):
    return signer.generate_presigned_post(
        bucket,
        "uploads/owner-1/${filename}",
        Fields={"Content-Type": "video/mp4", **(fields or {})},
        Conditions=[
            ["content-length-range", 1, max_size],
            {"Content-Type": "video/mp4"},
            *(conditions or []),
        ],
        ExpiresIn=60,
    )


def post_upload(post, content, *, fields=None, headers=None, url=None):
    return requests.post(
        url or post["url"],
        data={**post["fields"], **(fields or {})},
        files={"file": ("clip.mp4", content, "video/mp4")},
        headers=headers,
        timeout=TIMEOUT,
    )


def test_a_post_upload_lands_and_is_answered_like_s3(signer, s3, bucket):
    content = b"\x00\x01mp4 bytes\r\n--not-a-boundary\r\n" * 10
    post = presigned_post(signer, bucket)

    response = post_upload(post, content)

    key = "uploads/owner-1/clip.mp4"
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["ETag"] == md5_etag(content)
    assert response.headers["Location"] == f"{post['url']}/uploads%2Fowner-1%2Fclip.mp4"
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == content
    assert stored["ContentType"] == "video/mp4"


def test_success_action_status_201_answers_with_the_post_response(signer, bucket):
    post = presigned_post(
        signer,
        bucket,
        fields={"success_action_status": "201"},
        conditions=[{"success_action_status": "201"}],
    )

    response = post_upload(post, b"video")

    assert response.status_code == 201
    document = xml_fields(response)
    assert document == {
        "Location": response.headers["Location"],
        "Bucket": bucket,
        "Key": "uploads/owner-1/clip.mp4",
        "ETag": response.headers["ETag"],
    }
    assert response.headers["ETag"] == md5_etag(b"video")


@pytest.mark.parametrize(
    ("content", "code", "bound"),
    [
        (b"x" * 1025, "EntityTooLarge", ("MaxSizeAllowed", "1024")),
        (b"", "EntityTooSmall", ("MinSizeAllowed", "1")),
    ],
    ids=["too-large", "empty"],
)
def test_a_post_upload_outside_the_size_range_is_refused(
    signer, s3, bucket, content, code, bound
):
    response = post_upload(presigned_post(signer, bucket, max_size=1024), content)

    assert response.status_code == 400
    error = xml_fields(response)
    assert error["Code"] == code
    assert error["ProposedSize"] == str(len(content))
    assert error[bound[0]] == bound[1]
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"Content-Type": "text/html"},
            f'{CONDITION_FAILED}["eq", "$Content-Type", "video/mp4"]',
        ),
        (
            {"key": "videos/elsewhere.mp4"},
            f'{CONDITION_FAILED}["starts-with", "$key", "uploads/owner-1/"]',
        ),
        (
            {"x-amz-meta-owner": "someone"},
            "Invalid according to Policy: Extra input fields: x-amz-meta-owner",
        ),
    ],
    ids=["content-type", "key", "extra-field"],
)
def test_a_post_upload_breaking_a_condition_is_refused(
    signer, s3, bucket, fields, message
):
    response = post_upload(presigned_post(signer, bucket), b"video", fields=fields)

    assert response.status_code == 403
    error = xml_fields(response)
    assert (error["Code"], error["Message"]) == ("AccessDenied", message)
    assert keys_in(s3, bucket) == []


def test_a_post_to_another_bucket_breaks_the_bucket_condition(signer, s3, moto, bucket):
    other = make_bucket(moto, "gateway-other")
    post = presigned_post(signer, bucket)

    response = post_upload(post, b"video", url=post["url"].replace(bucket, other))

    assert response.status_code == 403
    assert '"$bucket"' in xml_fields(response)["Message"]
    assert keys_in(s3, other) == []


def test_an_expired_post_policy_is_refused(signer, s3, bucket, clock):
    post = presigned_post(signer, bucket)
    clock.offset = timedelta(minutes=2)

    response = post_upload(post, b"video")

    assert response.status_code == 403
    error = xml_fields(response)
    assert (error["Code"], error["Message"]) == (
        "AccessDenied",
        "Invalid according to Policy: Policy expired.",
    )
    assert keys_in(s3, bucket) == []


def test_a_post_policy_with_a_forged_signature_is_refused(signer, s3, bucket):
    post = presigned_post(signer, bucket)
    forged = "0" * 64

    response = post_upload(post, b"video", fields={"x-amz-signature": forged})

    assert response.status_code == 403
    assert xml_fields(response)["Code"] == "SignatureDoesNotMatch"
    assert keys_in(s3, bucket) == []


def test_a_post_upload_without_a_policy_is_refused(gateway, s3, bucket):
    response = requests.post(
        f"{gateway.url}/{bucket}",
        data={"key": "uploads/anonymous"},
        files={"file": ("f", b"x")},
        timeout=TIMEOUT,
    )

    assert response.status_code == 403
    assert xml_fields(response)["Code"] == "AccessDenied"
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize(
    ("size", "accepted"),
    [(0, False), (1, True), (10, True), (11, False)],
)
def test_the_size_range_includes_both_bounds(size, accepted):
    grant = PostGrant(
        credential=Credential(ACCESS_KEY, SECRET, "20250101", "us-east-1"),
        min_size=1,
        max_size=10,
    )
    if accepted:
        grant.check_size(size)
    else:
        with pytest.raises(S3Error):
            grant.check_size(size)


# --- CORS -------------------------------------------------------------------


@pytest.fixture
def cors_bucket(s3, bucket):
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [APP_ORIGIN],
                    "AllowedMethods": ["GET", "PUT", "POST"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag", "Location"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    return bucket


def preflight(gateway, bucket, origin, method="PUT", key="uploads/new.mp4"):
    return requests.options(
        f"{gateway.url}/{bucket}/{key}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=TIMEOUT,
    )


def test_a_preflight_from_an_allowed_origin_gets_the_bucket_rule(
    gateway, s3, cors_bucket
):
    s3.put_object(Bucket=cors_bucket, Key="uploads/existing.mp4", Body=b"x")

    for key in ("uploads/new.mp4", "uploads/existing.mp4"):
        response = preflight(gateway, cors_bucket, APP_ORIGIN, key=key)

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert response.headers["Access-Control-Allow-Methods"] == "GET, PUT, POST"
        assert response.headers["Access-Control-Allow-Headers"] == "content-type"
        assert response.headers["Access-Control-Expose-Headers"] == "ETag, Location"
        assert response.headers["Access-Control-Max-Age"] == "600"


@pytest.mark.parametrize(
    ("origin", "method"),
    [("http://evil.localhost", "PUT"), (APP_ORIGIN, "DELETE")],
)
def test_a_preflight_the_bucket_rule_does_not_allow_is_refused(
    gateway, cors_bucket, origin, method
):
    response = preflight(gateway, cors_bucket, origin, method=method)

    assert response.status_code == 403
    assert xml_fields(response)["Code"] == "AccessForbidden"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_to_a_bucket_without_cors_is_refused(gateway, bucket):
    response = preflight(gateway, bucket, APP_ORIGIN)

    assert response.status_code == 403
    assert xml_fields(response)["Message"] == (
        "CORSResponse: CORS is not enabled for this bucket."
    )


def test_forwarded_answers_carry_the_bucket_cors_headers_only(signer, cors_bucket):
    url = presigned_put(signer, cors_bucket, "uploads/cors.mp4")

    allowed = requests.put(
        url, data=b"x", headers={"Origin": APP_ORIGIN}, timeout=TIMEOUT
    )
    other = requests.put(
        url, data=b"x", headers={"Origin": "http://evil.localhost"}, timeout=TIMEOUT
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag, Location"
    assert "ETag" in allowed.headers
    assert other.status_code == 200
    assert not any(name.lower().startswith("access-control-") for name in other.headers)


def test_gateway_answers_carry_the_bucket_cors_headers(signer, cors_bucket, clock):
    expired = presigned_put(signer, cors_bucket, "uploads/late.mp4", expires=1)
    post = presigned_post(signer, cors_bucket)
    origin = {"Origin": APP_ORIGIN}

    uploaded = post_upload(post, b"video", headers=origin)
    clock.offset = timedelta(seconds=5)
    refused = requests.put(expired, data=b"x", headers=origin, timeout=TIMEOUT)

    assert uploaded.status_code == 204
    assert refused.status_code == 403
    for response in (uploaded, refused):
        assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert response.headers["Access-Control-Expose-Headers"] == "ETag, Location"


@pytest.mark.parametrize(
    ("origin", "headers", "matches"),
    [
        ("https://app.example.test", [], True),
        ("https://example.test", [], False),
        ("https://app.example.test", ["x-amz-meta-title", "Content-Type"], True),
        ("https://app.example.test", ["authorization"], False),
    ],
)
def test_cors_patterns_hold_one_wildcard(origin, headers, matches):
    rules = [
        {
            "AllowedOrigins": ["https://*.example.test"],
            "AllowedMethods": ["PUT"],
            "AllowedHeaders": ["x-amz-*", "content-type"],
        }
    ]

    assert (match_cors_rule(rules, origin, "PUT", headers) is not None) is matches


# --- lifecycle --------------------------------------------------------------


def test_stop_closes_the_port_and_every_thread_even_with_idle_clients(moto):
    before = set(threading.enumerate())
    gateway = S3Gateway(upstream=moto.url, secrets={})
    gateway.start()
    port = int(gateway.url.rsplit(":", 1)[1])
    session = requests.Session()
    assert session.get(f"{gateway.url}/", timeout=TIMEOUT).status_code == 403

    started = time.monotonic()
    gateway.stop()

    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) <= before
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    session.close()
