"""What callers cannot do: reach another user's uploads, or get anything but
a 4xx with a message out of a malformed request."""

from __future__ import annotations

import base64
import json

import pytest

from lambdas.upload_api import app as upload_app
from lambdas.upload_api.service import UploadApi
from lambdas.videos_api import app as videos_app
from tests.conftest import make_bucket
from tests.test_apigw_events import api_event
from tests.test_upload_api import MAX_UPLOAD, OTHER, OWNER, call, create, ok, sign
from tests.test_upload_api import env as env  # the shared fixture
from vod.model import Status
from vod.settings import Env

# Ownership


def a_users_upload(env):
    upload = create(size=20 * 1024 * 1024, sub=OWNER)
    return upload, env.videos.get(upload["videoId"])


OWNED_ROUTES = [
    ("GET /s3/multipart/{uploadId}", "query", None),
    ("GET /s3/multipart/{uploadId}/{partNumber}", "query", None),
    ("GET /s3/multipart/{uploadId}/batch", "query", None),
    ("POST /s3/multipart/{uploadId}/sign", "body", None),
    ("POST /s3/multipart/{uploadId}/complete", "query", None),
    ("DELETE /s3/multipart/{uploadId}", "query", None),
    ("POST /s3/sign", "body", {"method": "PUT", "partNumber": 1}),
    ("POST /s3/sign", "body", {"method": "GET"}),
    ("POST /s3/sign", "body", {"method": "POST"}),
    ("POST /s3/sign", "body", {"method": "DELETE"}),
]


def owned_request(route_key, where, sign_request, upload):
    path = {"uploadId": upload["uploadId"]}
    if route_key.endswith("{partNumber}"):
        path["partNumber"] = "1"
    query = {"key": upload["key"]}
    if route_key.endswith("/batch"):
        query["partNumbers"] = "1,2"
    body = None
    if route_key.endswith("/sign"):
        body = {"key": upload["key"], "partNumbers": [1, 2]}
    if route_key.endswith("/complete"):
        body = {"parts": [{"PartNumber": 1, "ETag": '"abc"'}]}
    if route_key == "POST /s3/sign":
        body = {"key": upload["key"], "uploadId": upload["uploadId"], **sign_request}
        return {"path": None, "query": None, "body": body}
    return {
        "path": path,
        "query": query if where == "query" else None,
        "body": body,
    }


@pytest.mark.parametrize(("route_key", "where", "sign_request"), OWNED_ROUTES)
def test_another_user_gets_404_with_the_first_users_key_and_upload(
    env, route_key, where, sign_request
):
    upload, before = a_users_upload(env)
    request = owned_request(route_key, where, sign_request, upload)

    status, body = call(route_key, sub=OTHER, **request)

    assert (status, body) == (404, {"message": "upload not found"})
    assert env.videos.get(upload["videoId"]) == before
    assert (
        env.s3.list_multipart_uploads(Bucket=env.bucket)["Uploads"][0]["UploadId"]
        == (upload["uploadId"])
    )


@pytest.mark.parametrize(("route_key", "where", "sign_request"), OWNED_ROUTES)
def test_an_absent_upload_gets_the_same_404(env, route_key, where, sign_request):
    """The answer for a foreign upload is the answer for no upload at all."""
    upload, _ = a_users_upload(env)
    fake = dict(upload, key=upload["key"].replace(upload["videoId"], "0" * 8))
    status, body = call(
        route_key, sub=OWNER, **owned_request(route_key, where, sign_request, fake)
    )
    assert (status, body) == (404, {"message": "upload not found"})


@pytest.mark.parametrize(
    "key",
    [
        f"uploads/{OWNER}/{'日' * 900}/a.mp4",
        f"uploads/{OWNER}/not-a-uuid/a.mp4",
        "uploads/a.mp4",
        "videos/4d3c2b1a-0f9e-4d8c-b7a6-958473625140/master.m3u8",
    ],
)
def test_keys_this_api_never_makes_are_404(env, key):
    status, body = call(
        "GET /s3/multipart/{uploadId}", path={"uploadId": "u"}, query={"key": key}
    )
    assert (status, body) == (404, {"message": "upload not found"})


def test_an_upload_id_must_be_the_records_own(env):
    mine, _ = a_users_upload(env)
    theirs = create(sub=OTHER)
    status, body = call(
        "GET /s3/multipart/{uploadId}",
        sub=OWNER,
        path={"uploadId": theirs["uploadId"]},
        query={"key": mine["key"]},
    )
    assert (status, body) == (404, {"message": "upload not found"})


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_starting_with_another_users_key_starts_the_callers_own_upload(env, method):
    upload, before = a_users_upload(env)
    status, body = sign(sub=OTHER, method=method, key=upload["key"])
    assert status == 200
    assert body["key"].startswith(f"uploads/{OTHER}/")
    assert body["key"].endswith("/My-Holiday.mp4")
    assert env.videos.get(upload["videoId"]) == before


# Malformed requests: every one is a 4xx whose message names the field.

#: Stands for the key of the caller's open upload, made per test.
KEY = object()
#: Stands for the id of a video the caller owns (made by the test).
OWNED = object()


def multipart(body=None, raw=None):
    return ("POST /s3/multipart", {"body": body, "raw_body": raw})


def params(**query):
    return ("GET /s3/params", {"query": query})


def on_upload(route_key, query=None, body=None, path=None):
    return (route_key, {"query": query, "body": body, "path": path, "upload": True})


def signing(**request):
    return ("POST /s3/sign", {"body": request})


VIDEO_ID = "4d3c2b1a-0f9e-4d8c-b7a6-958473625140"
#: The caller's own owner, but not the shape of a key DynamoDB handed out.
FORGED_CURSOR = base64.urlsafe_b64encode(json.dumps({"owner": OWNER}).encode()).decode()
GOOD = {"filename": "a.mp4", "type": "video/mp4"}
LIST = "GET /s3/multipart/{uploadId}"
PART = "GET /s3/multipart/{uploadId}/{partNumber}"
BATCH = "GET /s3/multipart/{uploadId}/batch"
SIGN = "POST /s3/multipart/{uploadId}/sign"
COMPLETE = "POST /s3/multipart/{uploadId}/complete"

BAD_REQUESTS = [
    (multipart(raw="{not json"), 400, "JSON"),
    (multipart(raw='{"filename": NaN}'), 400, "JSON"),
    (multipart(raw="[1, 2]"), 400, "body must be a JSON object"),
    (multipart(), 400, "body is required"),
    (multipart({"type": "video/mp4"}), 400, "filename"),
    (multipart({**GOOD, "filename": 5}), 400, "filename"),
    (multipart({**GOOD, "filename": "  "}), 400, "filename"),
    (multipart({**GOOD, "filename": "a" * 256}), 400, "filename"),
    (multipart({"filename": "a.mp4"}), 400, "type"),
    (multipart({**GOOD, "type": "image/png"}), 400, "type"),
    (multipart({**GOOD, "type": "video"}), 400, "type"),
    (multipart({**GOOD, "type": ["video/mp4"]}), 400, "type"),
    (multipart({**GOOD, "size": "big"}), 400, "size"),
    (multipart({**GOOD, "size": 0}), 400, "size"),
    (multipart({**GOOD, "size": -5}), 400, "size"),
    (multipart({**GOOD, "size": 1.5}), 400, "size"),
    (multipart({**GOOD, "size": True}), 400, "size"),
    (multipart({**GOOD, "size": MAX_UPLOAD + 1}), 400, "size"),
    (multipart({**GOOD, "size": 5, "signParts": 0}), 400, "signParts"),
    (multipart({**GOOD, "size": 5, "signParts": "all"}), 400, "signParts"),
    (multipart({**GOOD, "size": 5, "signParts": 10_001}), 400, "signParts"),
    (multipart({**GOOD, "signParts": 4}), 400, "signParts needs size"),
    (multipart({**GOOD, "checksumAlgorithm": "MD5"}), 400, "checksumAlgorithm"),
    (multipart({**GOOD, "checksumAlgorithm": 256}), 400, "checksumAlgorithm"),
    (
        multipart({**GOOD, "size": 5, "signParts": 1, "checksumAlgorithm": "SHA256"}),
        400,
        "signParts cannot go with checksumAlgorithm",
    ),
    (
        on_upload(SIGN, body={"key": KEY, "partNumbers": [1], "checksums": [1]}),
        400,
        "checksums",
    ),
    (
        on_upload(
            SIGN, body={"key": KEY, "partNumbers": [1], "checksums": {"1": "abc"}}
        ),
        400,
        "checksums.1",
    ),
    (
        on_upload(
            SIGN,
            body={"key": KEY, "partNumbers": [1], "checksums": {"x": "A" * 44}},
        ),
        400,
        "checksums.x",
    ),
    (
        # A checksum on an upload created without one.
        on_upload(
            SIGN,
            body={
                "key": KEY,
                "partNumbers": [1],
                "checksums": {"1": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
            },
        ),
        400,
        "created without checksumAlgorithm",
    ),
    (
        on_upload(PART, query={"key": KEY, "checksum": "zz"}, path={"partNumber": "1"}),
        400,
        "checksum",
    ),
    (multipart({**GOOD, "metadata": "x"}), 400, "metadata"),
    (multipart({**GOOD, "metadata": {"title": 7}}), 400, "metadata.title"),
    (params(type="video/mp4"), 400, "filename"),
    (params(filename="a.mp4", type="text/html"), 400, "type"),
    (params(filename="a.mp4", type="video/mp4", size="x"), 400, "size"),
    (params(filename="a.mp4", type="video/mp4", size=str(6 * 1024**3)), 400, "size"),
    (on_upload(LIST, query={}), 400, "key"),
    (on_upload(PART, query={"key": KEY}, path={"partNumber": "0"}), 400, "partNumber"),
    (
        on_upload(PART, query={"key": KEY}, path={"partNumber": "10001"}),
        400,
        "partNumber",
    ),
    (
        on_upload(PART, query={"key": KEY}, path={"partNumber": "abc"}),
        400,
        "partNumber",
    ),
    (
        on_upload(PART, query={"key": KEY}, path={"partNumber": "1.5"}),
        400,
        "partNumber",
    ),
    (on_upload(PART, query={"key": KEY}, path={"partNumber": "-1"}), 400, "partNumber"),
    (on_upload(PART, query={"key": KEY}, path={"partNumber": "4"}), 400, "partNumber"),
    (on_upload(BATCH, query={"key": KEY}), 400, "partNumbers"),
    (
        on_upload(BATCH, query={"key": KEY, "partNumbers": "1,,2"}),
        400,
        "partNumbers",
    ),
    (
        on_upload(BATCH, query={"key": KEY, "partNumbers": "1,1"}),
        400,
        "partNumbers",
    ),
    (on_upload(SIGN, body={"key": KEY}), 400, "partNumbers"),
    (
        on_upload(SIGN, body={"key": KEY, "partNumbers": []}),
        400,
        "partNumbers",
    ),
    (
        on_upload(SIGN, body={"key": KEY, "partNumbers": ["1"]}),
        400,
        "partNumbers",
    ),
    (
        on_upload(SIGN, body={"key": KEY, "partNumbers": list(range(1, 1002))}),
        400,
        "partNumbers",
    ),
    (on_upload(SIGN, body={"partNumbers": [1]}), 400, "key"),
    (on_upload(COMPLETE, query={"key": KEY}), 400, "body"),
    (
        on_upload(COMPLETE, query={"key": KEY}, body={"parts": []}),
        400,
        "parts",
    ),
    (
        on_upload(
            COMPLETE,
            query={"key": KEY},
            body={
                "parts": [
                    {"PartNumber": 2, "ETag": "b"},
                    {"PartNumber": 1, "ETag": "a"},
                ]
            },
        ),
        400,
        "parts[1].PartNumber",
    ),
    (
        on_upload(
            COMPLETE,
            query={"key": KEY},
            body={
                "parts": [
                    {"PartNumber": 1, "ETag": "a"},
                    {"PartNumber": 1, "ETag": "a"},
                ]
            },
        ),
        400,
        "parts[1].PartNumber",
    ),
    (
        on_upload(
            COMPLETE,
            query={"key": KEY},
            body={"parts": [{"PartNumber": 1}]},
        ),
        400,
        "parts[0].ETag",
    ),
    (on_upload("DELETE /s3/multipart/{uploadId}", query={}), 400, "key"),
    (signing(key="a.mp4"), 400, "method"),
    (signing(method="COPY", key="a.mp4"), 400, "method"),
    (signing(method="PUT"), 400, "key"),
    (signing(method="PUT", key=5), 400, "key"),
    (signing(method="PUT", key="a.mp4", contentType="image/png"), 400, "contentType"),
    (signing(method="PUT", key="no-extension"), 400, "contentType"),
    (signing(method="PUT", key="a.mp4", expiresIn=0), 400, "expiresIn"),
    (signing(method="PUT", key="a.mp4", expiresIn="60"), 400, "expiresIn"),
    (signing(method="GET", key="a.mp4", uploadId=5), 400, "uploadId"),
    (
        ("POST /s3/sign", {"body": {"method": "PUT", "partNumber": 0}, "upload": True}),
        400,
        "partNumber",
    ),
    (("GET /videos", {"query": {"limit": "0"}}), 400, "limit"),
    (("GET /videos", {"query": {"limit": "many"}}), 400, "limit"),
    (("GET /videos", {"query": {"limit": "101"}}), 400, "limit"),
    (("GET /videos", {"query": {"cursor": "!!not-ours!!"}}), 400, "cursor"),
    (("GET /videos", {"query": {"cursor": FORGED_CURSOR}}), 400, "cursor"),
    (("GET /videos/{id}", {"path": {"id": "not-a-uuid"}}), 400, "id"),
    (("PATCH /videos/{id}", {"path": {"id": OWNED}, "body": {}}), 400, "title"),
    (
        ("PATCH /videos/{id}", {"path": {"id": OWNED}, "body": {"title": 5}}),
        400,
        "title",
    ),
    (
        ("PATCH /videos/{id}", {"path": {"id": OWNED}, "body": {"title": ""}}),
        400,
        "title",
    ),
    (
        (
            "PATCH /videos/{id}",
            {"path": {"id": OWNED}, "body": {"description": "d" * 5001}},
        ),
        400,
        "description",
    ),
    (
        ("PATCH /videos/{id}", {"path": {"id": OWNED}, "body": {"status": "READY"}}),
        400,
        "status",
    ),
    (
        ("PATCH /videos/{id}", {"path": {"id": OWNED}, "raw_body": "{"}),
        400,
        "JSON",
    ),
    (("DELETE /videos/{id}", {"path": {"id": "../etc"}}), 400, "id"),
]


def test_the_table_is_long_enough():
    assert len(BAD_REQUESTS) >= 30


@pytest.fixture
def both_functions(env, moto, monkeypatch):
    """The upload function's environment, plus what the videos function needs."""
    monkeypatch.setenv(Env.OUTPUT_BUCKET, make_bucket(moto, "output"))
    videos_app.api.cache_clear()
    yield env
    videos_app.api.cache_clear()


def invoke(route_key, parts):
    function = upload_app if route_key.split(" ")[1].startswith("/s3") else videos_app
    response = function.handler(api_event(route_key, sub=OWNER, **parts), None)
    return response["statusCode"], json.loads(response["body"])


def filled(value, upload):
    if value is KEY:
        return upload["key"]
    if value is OWNED:
        return upload["videoId"]
    if isinstance(value, dict):
        return {name: filled(v, upload) for name, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("request_", "status", "field"),
    BAD_REQUESTS,
    ids=[f"{i}-{r[0][0]}-{r[2]}" for i, r in enumerate(BAD_REQUESTS)],
)
def test_malformed_requests_get_a_4xx_naming_the_field(
    both_functions, request_, status, field
):
    route_key, parts = request_
    parts = dict(parts)
    if OWNED in (parts.get("path") or {}).values():
        parts = filled(parts, create())
    if parts.pop("upload", False):
        upload = create(size=20 * 1024 * 1024)
        parts = filled(parts, upload)
        if route_key == "POST /s3/sign":
            parts["body"] = {**parts["body"], "key": upload["key"]}
            parts["body"]["uploadId"] = upload["uploadId"]
        else:
            parts["path"] = {"uploadId": upload["uploadId"], **(parts["path"] or {})}
    parts = {name: value for name, value in parts.items() if value is not None}
    if "body" not in parts and "raw_body" not in parts:
        parts["body"] = None

    answer_status, answer = invoke(route_key, parts)

    assert 400 <= answer_status < 500
    assert answer_status == status, answer
    assert field in answer["message"]


def test_an_unknown_route_is_404_json():
    event = api_event("GET /videos", sub=OWNER)
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /nowhere"
    for function in (upload_app, videos_app):
        response = function.handler(event, None)
        assert response["statusCode"] == 404
        assert json.loads(response["body"]) == {"message": "Not Found"}


def test_a_call_without_a_subject_is_401(both_functions):
    event = api_event("GET /videos", sub=None)
    response = videos_app.handler(event, None)
    assert response["statusCode"] == 401
    assert json.loads(response["body"]) == {"message": "Unauthorized"}


def test_a_base64_body_is_decoded_and_bad_base64_is_a_400(env):
    event = api_event("POST /s3/multipart", sub=OWNER, body=None)
    event["body"] = base64.b64encode(json.dumps(GOOD).encode()).decode()
    event["isBase64Encoded"] = True
    assert upload_app.handler(event, None)["statusCode"] == 200
    event["body"] = base64.b64encode(b"\xff\xfe").decode()
    response = upload_app.handler(event, None)
    assert response["statusCode"] == 400
    assert "UTF-8" in json.loads(response["body"])["message"]


def test_an_unexpected_failure_is_a_logged_500_without_details(
    env, monkeypatch, caplog
):
    def broken() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(UploadApi, "from_env", broken)
    status, body = invoke("POST /s3/multipart", {"body": GOOD})
    assert (status, body) == (500, {"message": "Internal Server Error"})
    assert "secret internals" in caplog.text


def test_no_state_changes_on_refused_input(env):
    upload = create()
    call(
        "POST /s3/multipart/{uploadId}/complete",
        path={"uploadId": upload["uploadId"]},
        query={"key": upload["key"]},
        body={
            "parts": [{"PartNumber": 2, "ETag": "b"}, {"PartNumber": 1, "ETag": "a"}]
        },
    )
    assert env.videos.get(upload["videoId"]).status is Status.UPLOADING
    assert (
        ok(
            "GET /s3/multipart/{uploadId}",
            path={"uploadId": upload["uploadId"]},
            query={"key": upload["key"]},
        )
        == []
    )
