"""Presigning speed: S3Presigner against botocore's generate_presigned_url for
the 10,000 UploadPart URLs of a maximal multipart upload, plus the largest
response body the API produces to hand all 10,000 part URLs out.

Run from the repo root: ``.venv/bin/python bench/sign.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from lambdas.upload_api.signer import S3Presigner

PARTS = 10_000
EXPIRES_IN = 3600
# The longest a bucket name and a commercial region name get, so that the
# response size below is an upper bound rather than a typical value.
BUCKET = "vodstoragestack-uploadsbucket" + "a" * 34
REGION = "ap-southeast-2"
RNG = random.Random(7)
OWNER, VIDEO = (uuid.UUID(int=RNG.getrandbits(128), version=4) for _ in range(2))
KEY = f"uploads/{OWNER}/{VIDEO}/my-video-file.mp4"
# S3 upload IDs are opaque; real ones run to ~100-200 characters of this set.
UPLOAD_ID = "".join(
    RNG.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    for _ in range(160)
)


# Fake credentials shaped like a Lambda role's: an ASIA key and a session token
# of ~1,000 base64 characters, whose '+', '/' and '=' the URL escapes.
LAMBDA_CREDENTIALS = ReadOnlyCredentials(
    "ASIA" + "FAKEFAKEFAKEFAKE",
    base64.b64encode(RNG.randbytes(30)).decode(),
    base64.b64encode(RNG.randbytes(750)).decode(),
)


def presign_part(
    presigner: S3Presigner, part: int, now: dt.datetime | None = None
) -> str:
    return presigner.presign(
        "PUT",
        KEY,
        query={"partNumber": str(part), "uploadId": UPLOAD_ID},
        expires_in=EXPIRES_IN,
        now=now,
    )


def botocore_signer(session: boto3.session.Session) -> Callable[[int], str]:
    s3 = session.client(
        "s3",
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )

    def sign(part: int) -> str:
        url: str = s3.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": BUCKET,
                "Key": KEY,
                "PartNumber": part,
                "UploadId": UPLOAD_ID,
            },
            ExpiresIn=EXPIRES_IN,
        )
        return url

    return sign


def best_seconds(sign: Callable[[int], str], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for part in range(1, PARTS + 1):
            sign(part)
        timings.append(time.perf_counter() - start)
    return min(timings)


def check_identical(presigner: S3Presigner, boto_sign: Callable[[int], str]) -> None:
    frozen = dt.datetime(2025, 1, 2, 3, 4, 5)
    with mock.patch("botocore.auth.get_current_datetime", return_value=frozen):
        expected = boto_sign(PARTS)
    if presign_part(presigner, PARTS, now=frozen) != expected:
        raise SystemExit("S3Presigner and botocore disagree; fix that first")


# --- max_sign_response_bytes -------------------------------------------------
# The real upload handler, on a local moto server, with Lambda-shaped
# credentials: create a 10,000-part upload with its first page of URLs, then
# ask the sign and batch routes for every page the API allows; the largest
# body is the API's worst case.


def _event(
    route_key: str,
    path: dict[str, str],
    body: object = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": route_key,
        "requestContext": {"authorizer": {"jwt": {"claims": {"sub": str(OWNER)}}}},
        "pathParameters": path,
        "queryStringParameters": query,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def max_sign_response_bytes() -> int:
    from lambdas.upload_api import app
    from lambdas.upload_api.parts import MAX_PARTS_PER_CALL
    from local.motoserver import moto_server
    from tests.conftest import create_video_table
    from vod.settings import MIB, Env

    with moto_server() as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": LAMBDA_CREDENTIALS.access_key,
            "AWS_SECRET_ACCESS_KEY": LAMBDA_CREDENTIALS.secret_key,
            "AWS_SESSION_TOKEN": LAMBDA_CREDENTIALS.token,
            Env.TABLE_NAME: "videos",
            Env.SOURCE_BUCKET: BUCKET,
            Env.MAX_UPLOAD_BYTES: str(5 * 1024**4),
            Env.MIN_PART_BYTES: str(8 * MIB),
        }
        with mock.patch.dict(os.environ, env):
            boto3.client("s3").create_bucket(
                Bucket=BUCKET,
                CreateBucketConfiguration={"LocationConstraint": REGION},
            )
            create_video_table(boto3.client("dynamodb"), "videos")
            app.api.cache_clear()
            # Create with the most part URLs it hands out (signParts).
            answer = app.handler(
                _event(
                    "POST /s3/multipart",
                    {},
                    {
                        "filename": "my-video-file.mp4",
                        "type": "video/mp4",
                        "size": PARTS * 8 * MIB,
                        "signParts": PARTS,
                    },
                ),
                None,
            )
            if answer["statusCode"] != 200:
                raise SystemExit(f"create failed: {answer['body']}")
            created = json.loads(answer["body"])
            upload = {"uploadId": created["uploadId"]}
            largest = len(answer["body"].encode())
            for first in range(1, PARTS + 1, MAX_PARTS_PER_CALL):
                numbers = list(range(first, min(first + MAX_PARTS_PER_CALL, PARTS + 1)))
                for response in (
                    app.handler(
                        _event(
                            "POST /s3/multipart/{uploadId}/sign",
                            upload,
                            {"key": created["key"], "partNumbers": numbers},
                        ),
                        None,
                    ),
                    app.handler(
                        _event(
                            "GET /s3/multipart/{uploadId}/batch",
                            upload,
                            query={
                                "key": created["key"],
                                "partNumbers": ",".join(map(str, numbers)),
                            },
                        ),
                        None,
                    ),
                ):
                    if response["statusCode"] != 200:
                        raise SystemExit(f"sign route failed: {response['body']}")
                    largest = max(largest, len(response["body"].encode()))
            app.api.cache_clear()
    return largest


def main() -> None:
    # Production URLs are AWS-shaped; keep a local runner's endpoint out of both
    # clients, which read it from the environment.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    session = boto3.session.Session(
        aws_access_key_id=LAMBDA_CREDENTIALS.access_key,
        aws_secret_access_key=LAMBDA_CREDENTIALS.secret_key,
        aws_session_token=LAMBDA_CREDENTIALS.token,
        region_name=REGION,
    )
    presigner = S3Presigner.from_boto3_session(bucket=BUCKET, session=session)
    boto_sign = botocore_signer(session)
    check_identical(presigner, boto_sign)

    ours_seconds = best_seconds(functools.partial(presign_part, presigner), repeats=5)
    boto_seconds = best_seconds(boto_sign, repeats=3)
    per_url = 1e6 / PARTS
    print(
        f"S3Presigner: {ours_seconds:.3f}s for {PARTS} UploadPart URLs "
        f"({ours_seconds * per_url:.1f} µs/URL, best of 5)"
    )
    print(
        f"botocore:    {boto_seconds:.3f}s for {PARTS} UploadPart URLs "
        f"({boto_seconds * per_url:.1f} µs/URL, best of 3)"
    )
    print(
        f"sign: {boto_seconds / ours_seconds:.1f}x botocore; "
        f"max response {max_sign_response_bytes()} bytes"
    )


if __name__ == "__main__":
    main()
