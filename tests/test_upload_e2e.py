"""The whole upload flow over real HTTP on loopback: ``requests`` talks to
the local HTTP API (JWT authorizer, both functions), and sends the bytes
straight to "S3", the gateway that checks signatures and POST policies in
front of moto, as real S3 would."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator

import pytest
import requests

from tests.api_stack import MIB, TIMEOUT, ApiStack, serve_api

#: The most the API accepts here: above the big file, cheap to exceed.
MAX_UPLOAD = 27 * MIB


@pytest.fixture
def stack(aws_env, moto) -> Iterator[ApiStack]:
    with serve_api(moto, max_upload=MAX_UPLOAD) as stack:
        yield stack


def stored_sha256(stack, key: str) -> str:
    body = stack.s3.get_object(Bucket=stack.source, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(MIB), b""):
        digest.update(chunk)
    return digest.hexdigest()


def put_part(url: str, data: bytes) -> str:
    response = requests.put(url, data=data, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def chunks(data: bytes, size: int) -> dict[int, bytes]:
    return {
        n + 1: data[start : start + size]
        for n, start in enumerate(range(0, len(data), size))
    }


def test_a_25_mib_file_uploads_in_presigned_parts_and_completes(stack):
    data = os.urandom(26 * MIB)
    upload = stack.owner.ok(
        "POST",
        "/s3/multipart",
        json={"filename": "big clip.mp4", "type": "video/mp4", "size": len(data)},
    )
    parts = chunks(data, upload["partSize"])
    assert len(parts) == upload["partCount"] >= 3

    signed = stack.owner.ok(
        "POST",
        f"/s3/multipart/{upload['uploadId']}/sign",
        json={"key": upload["key"], "partNumbers": list(parts)},
    )
    etags = {
        p["partNumber"]: put_part(p["url"], parts[p["partNumber"]])
        for p in signed["parts"]
    }
    done = stack.owner.ok(
        "POST",
        f"/s3/multipart/{upload['uploadId']}/complete",
        params={"key": upload["key"]},
        json={"parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
    )

    assert done["key"] == upload["key"]
    assert stored_sha256(stack, upload["key"]) == hashlib.sha256(data).hexdigest()
    video = stack.owner.ok("GET", f"/videos/{upload['videoId']}")
    assert (video["status"], video["size"]) == ("UPLOADED", len(data))


def test_an_interrupted_upload_resumes_from_the_listed_parts(stack):
    data = os.urandom(25 * MIB)
    upload = stack.owner.ok(
        "POST",
        "/s3/multipart",
        json={"filename": "resume.mp4", "type": "video/mp4", "size": len(data)},
    )
    parts = chunks(data, upload["partSize"])
    assert len(parts) == 4
    base = f"/s3/multipart/{upload['uploadId']}"
    key = {"key": upload["key"]}

    first = stack.owner.ok("GET", f"{base}/batch", params={**key, "partNumbers": "1,3"})
    for number, url in first["presignedUrls"].items():
        put_part(url, parts[int(number)])
    # The browser is gone; a new session learns what S3 already has.
    listed = stack.owner.ok("GET", base, params=key)
    assert [p["PartNumber"] for p in listed] == [1, 3]
    assert [p["Size"] for p in listed] == [len(parts[1]), len(parts[3])]
    etags = {p["PartNumber"]: p["ETag"] for p in listed}
    for number in sorted(set(parts) - set(etags)):
        url = stack.owner.ok("GET", f"{base}/{number}", params=key)["url"]
        etags[number] = put_part(url, parts[number])
    stack.owner.ok(
        "POST",
        f"{base}/complete",
        params=key,
        json={"parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
    )

    assert stored_sha256(stack, upload["key"]) == hashlib.sha256(data).hexdigest()


def signed(stack, **request):
    return stack.owner.ok("POST", "/s3/sign", json=request)


def upload_id_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    match = re.search(r"<UploadId>([^<]+)</UploadId>", response.text)
    assert match, response.text
    return match.group(1)


def test_uppy_6_signing_runs_every_s3_call_straight_against_s3(stack):
    data = os.urandom(6 * MIB)
    parts = chunks(data, 5 * MIB)
    created = signed(stack, method="POST", key="x1-clip.mp4", contentType="video/mp4")
    key = created["key"]
    upload_id = upload_id_of(requests.post(created["url"], timeout=TIMEOUT))

    etags = {}
    for number, part in parts.items():
        url = signed(
            stack, method="PUT", key=key, uploadId=upload_id, partNumber=number
        )
        etags[number] = put_part(url["url"], part)
    listing = requests.get(
        signed(stack, method="GET", key=key, uploadId=upload_id)["url"], timeout=TIMEOUT
    )
    assert listing.status_code == 200
    assert re.findall(r"<ETag>([^<]+)</ETag>", listing.text) == [etags[1], etags[2]]
    complete_xml = (
        "<CompleteMultipartUpload>"
        + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
            for n in etags
        )
        + "</CompleteMultipartUpload>"
    )
    finished = requests.post(
        signed(stack, method="POST", key=key, uploadId=upload_id)["url"],
        data=complete_xml,
        timeout=TIMEOUT,
    )
    assert finished.status_code == 200, finished.text
    assert stored_sha256(stack, key) == hashlib.sha256(data).hexdigest()

    abandoned = signed(stack, method="POST", key="x2-clip.mp4")
    abandoned_id = upload_id_of(requests.post(abandoned["url"], timeout=TIMEOUT))
    abort = signed(stack, method="DELETE", key=abandoned["key"], uploadId=abandoned_id)
    assert requests.delete(abort["url"], timeout=TIMEOUT).status_code == 204
    assert "Uploads" not in stack.s3.list_multipart_uploads(Bucket=stack.source)
    video = stack.owner.ok("GET", f"/videos/{abandoned['key'].split('/')[2]}")
    assert video["status"] == "ABORTED"


def test_a_tampered_signed_url_is_refused_by_s3(stack):
    created = signed(stack, method="PUT", key="clip.mp4")
    tampered = created["url"].replace("clip.mp4", "other.mp4")
    assert requests.put(tampered, data=b"x", timeout=TIMEOUT).status_code == 403


def test_a_post_policy_upload_lands_and_one_over_the_bound_is_refused(stack):
    def form(filename):
        return stack.owner.ok(
            "GET", "/s3/params", params={"filename": filename, "type": "video/mp4"}
        )

    small = form("small.mp4")
    content = os.urandom(64 * 1024)
    landed = requests.post(
        small["url"],
        data=small["fields"],
        files={"file": ("small.mp4", content, "video/mp4")},
        timeout=TIMEOUT,
    )
    assert landed.status_code == 201, landed.text
    assert landed.headers["ETag"] == f'"{hashlib.md5(content).hexdigest()}"'  # noqa: S324
    assert (
        stored_sha256(stack, small["fields"]["key"])
        == hashlib.sha256(content).hexdigest()
    )

    large = form("large.mp4")
    refused = requests.post(
        large["url"],
        data=large["fields"],
        files={"file": ("large.mp4", b"\0" * (MAX_UPLOAD + 1), "video/mp4")},
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400
    assert "EntityTooLarge" in refused.text
    listed = stack.s3.list_objects_v2(
        Bucket=stack.source, Prefix=large["fields"]["key"]
    )
    assert "Contents" not in listed


def test_over_http_the_api_needs_a_token_and_hides_other_users_uploads(stack):
    upload = stack.owner.ok(
        "POST", "/s3/multipart", json={"filename": "a.mp4", "type": "video/mp4"}
    )
    anonymous = requests.get(
        f"{stack.api.url}/s3/multipart/{upload['uploadId']}",
        params={"key": upload["key"]},
        timeout=TIMEOUT,
    )
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        {"message": "Unauthorized"},
    )
    for method, path, kwargs in [
        (
            "GET",
            f"/s3/multipart/{upload['uploadId']}",
            {"params": {"key": upload["key"]}},
        ),
        (
            "DELETE",
            f"/s3/multipart/{upload['uploadId']}",
            {"params": {"key": upload["key"]}},
        ),
        ("GET", f"/videos/{upload['videoId']}", {}),
        ("DELETE", f"/videos/{upload['videoId']}", {}),
    ]:
        response = stack.other.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path)
    assert (
        stack.owner.ok("GET", f"/videos/{upload['videoId']}")["status"] == "UPLOADING"
    )
