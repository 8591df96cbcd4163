"""The whole upload flow over real HTTP on loopback: ``requests`` talks to
the local HTTP API (JWT authorizer, both functions), and sends the bytes
straight to "S3", the gateway that checks signatures and POST policies in
front of moto, as real S3 would."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterator

import boto3
import pytest
import requests
from botocore.config import Config

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


def test_no_route_signs_or_completes_an_upload_id_the_record_does_not_hold(stack):
    """A single PUT or POST upload has no upload ID, and a browser's multipart
    upload takes only an ID that S3 ties to its key: a made-up ID, or another
    user's, gets the same 404 as a missing upload, never a 500."""
    theirs = stack.other.ok(
        "POST", "/s3/multipart", json={"filename": "b.mp4", "type": "video/mp4"}
    )
    their_part = os.urandom(5 * MIB)
    part_url = stack.other.ok(
        "GET",
        f"/s3/multipart/{theirs['uploadId']}/1",
        params={"key": theirs["key"]},
    )["url"]
    their_etag = put_part(part_url, their_part)

    form = stack.owner.ok(
        "GET", "/s3/params", params={"filename": "a.mp4", "type": "video/mp4"}
    )
    single = signed(stack, method="PUT", key="a.mp4")
    browser = signed(stack, method="POST", key="a.mp4")
    mine = upload_id_of(requests.post(browser["url"], timeout=TIMEOUT))
    keys = [form["fields"]["key"], single["key"], browser["key"]]
    for key in keys:
        for upload_id in ("made-up", theirs["uploadId"]):
            completed = stack.owner.request(
                "POST",
                f"/s3/multipart/{upload_id}/complete",
                params={"key": key},
                json={"parts": [{"PartNumber": 1, "ETag": their_etag}]},
            )
            assert completed.status_code == 404, (key, completed.text)
            assert completed.json() == {"message": "upload not found"}
            for request in (
                {"method": "PUT", "partNumber": 1},
                {"method": "GET"},
                {"method": "POST"},
            ):
                refused = stack.owner.request(
                    "POST",
                    "/s3/sign",
                    json={"key": key, "uploadId": upload_id, **request},
                )
                assert refused.status_code == 404, (key, request, refused.text)
    # The browser's own upload ID still works, and binds its record.
    url = signed(stack, method="PUT", key=browser["key"], uploadId=mine, partNumber=1)
    put_part(url["url"], b"mine")
    listed = stack.s3.list_parts(
        Bucket=stack.source, Key=theirs["key"], UploadId=theirs["uploadId"]
    )["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, their_etag, len(their_part))
    ]


def test_s3_ties_an_upload_id_to_its_key(stack):
    """What S3 does and moto does not: a part sent with another key's upload
    ID is refused, and that upload is untouched."""
    first = stack.s3.create_multipart_upload(Bucket=stack.source, Key="uploads/a")
    stack.s3.create_multipart_upload(Bucket=stack.source, Key="uploads/b")
    signer = boto3.client(
        "s3", endpoint_url=stack.gateway.url, config=Config(signature_version="s3v4")
    )
    url = signer.generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": stack.source,
            "Key": "uploads/b",
            "UploadId": first["UploadId"],
            "PartNumber": 1,
        },
    )
    refused = requests.put(url, data=b"x", timeout=TIMEOUT)
    assert refused.status_code == 404
    assert "<Code>NoSuchUpload</Code>" in refused.text
    assert "Parts" not in stack.s3.list_parts(
        Bucket=stack.source, Key="uploads/a", UploadId=first["UploadId"]
    )


def test_a_part_is_signed_for_its_planned_length_only(stack):
    size = 12 * MIB
    upload = stack.owner.ok(
        "POST",
        "/s3/multipart",
        json={"filename": "sized.mp4", "type": "video/mp4", "size": size},
    )
    assert (upload["partSize"], upload["partCount"]) == (8 * MIB, 2)
    signed_parts = stack.owner.ok(
        "POST",
        f"/s3/multipart/{upload['uploadId']}/sign",
        json={"key": upload["key"], "partNumbers": [1, 2]},
    )["parts"]
    urls = {p["partNumber"]: p["url"] for p in signed_parts}
    for number, wrong in ((1, 40 * MIB), (1, 8 * MIB - 1), (2, 8 * MIB)):
        refused = requests.put(urls[number], data=b"\0" * wrong, timeout=TIMEOUT)
        assert refused.status_code == 403, (number, wrong)
        assert "SignatureDoesNotMatch" in refused.text
    put_part(urls[1], b"\1" * (8 * MIB))
    put_part(urls[2], b"\2" * (4 * MIB))
    listed = stack.s3.list_parts(
        Bucket=stack.source, Key=upload["key"], UploadId=upload["uploadId"]
    )["Parts"]
    assert [p["Size"] for p in listed] == [8 * MIB, 4 * MIB]


def test_a_single_put_url_cannot_replace_its_upload(stack):
    single = signed(stack, method="PUT", key="once.mp4")
    first = requests.put(
        single["url"], data=b"first", headers=single["headers"], timeout=TIMEOUT
    )
    assert first.status_code == 200, first.text
    again = requests.put(
        single["url"], data=b"x" * 1000, headers=single["headers"], timeout=TIMEOUT
    )
    assert again.status_code == 412
    # Without the header it was signed with, the URL is no good at all.
    bare = requests.put(single["url"], data=b"x" * 1000, timeout=TIMEOUT)
    assert bare.status_code == 403
    body = stack.s3.get_object(Bucket=stack.source, Key=single["key"])["Body"].read()
    assert body == b"first"


def test_a_part_is_signed_for_its_sha256_and_s3_checks_it(stack):
    data = os.urandom(6 * MIB)
    upload = stack.owner.ok(
        "POST",
        "/s3/multipart",
        json={
            "filename": "checked.mp4",
            "type": "video/mp4",
            "size": len(data),
            "checksumAlgorithm": "SHA256",
        },
    )
    parts = chunks(data, upload["partSize"])
    digests = {
        n: base64.b64encode(hashlib.sha256(part).digest()).decode()
        for n, part in parts.items()
    }
    base = f"/s3/multipart/{upload['uploadId']}"
    unsigned = stack.owner.request(
        "POST", f"{base}/sign", json={"key": upload["key"], "partNumbers": [1]}
    )
    assert unsigned.status_code == 400
    assert "needs its SHA-256" in unsigned.json()["message"]
    signed_parts = stack.owner.ok(
        "POST",
        f"{base}/sign",
        json={"key": upload["key"], "partNumbers": list(parts), "checksums": digests},
    )["parts"]
    urls = {p["partNumber"]: p["url"] for p in signed_parts}
    header = {"x-amz-checksum-sha256": digests[1]}
    changed = bytes([parts[1][0] ^ 1]) + parts[1][1:]
    refused = requests.put(urls[1], data=changed, headers=header, timeout=TIMEOUT)
    assert refused.status_code == 400
    assert "<Code>BadDigest</Code>" in refused.text
    etags = {}
    for number, part in parts.items():
        sent = requests.put(
            urls[number],
            data=part,
            headers={"x-amz-checksum-sha256": digests[number]},
            timeout=TIMEOUT,
        )
        assert sent.status_code == 200, sent.text
        etags[number] = sent.headers["ETag"]
    done = stack.owner.ok(
        "POST",
        f"{base}/complete",
        params={"key": upload["key"]},
        json={
            "parts": [
                {"PartNumber": n, "ETag": etags[n], "ChecksumSHA256": digests[n]}
                for n in sorted(etags)
            ]
        },
    )
    joined = b"".join(base64.b64decode(digests[n]) for n in sorted(digests))
    whole = base64.b64encode(hashlib.sha256(joined).digest()).decode()
    expected = f"{whole}-{len(parts)}"
    assert done["checksum"] == {
        "algorithm": "SHA256",
        "type": "COMPOSITE",
        "value": expected,
    }
    assert stack.owner.ok("GET", f"/videos/{upload['videoId']}")["checksum"] == expected
    assert stored_sha256(stack, upload["key"]) == hashlib.sha256(data).hexdigest()


def test_a_form_for_a_declared_size_takes_that_size_only(stack):
    form = stack.owner.ok(
        "GET",
        "/s3/params",
        params={"filename": "five.mp4", "type": "video/mp4", "size": "5"},
    )
    for body, code in ((b"123456", "EntityTooLarge"), (b"1234", "EntityTooSmall")):
        refused = requests.post(
            form["url"],
            data=form["fields"],
            files={"file": ("five.mp4", body, "video/mp4")},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 400
        assert f"<Code>{code}</Code>" in refused.text
    landed = requests.post(
        form["url"],
        data=form["fields"],
        files={"file": ("five.mp4", b"12345", "video/mp4")},
        timeout=TIMEOUT,
    )
    assert landed.status_code == 201, landed.text
