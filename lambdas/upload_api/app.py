"""The upload function: every ``/s3/...`` route of the HTTP API.

Uppy 5 (``@uppy/aws-s3`` with Companion-style ``endpoint``) calls the
Companion routes; Uppy 6's ``signRequest`` posts each S3 request to
``POST /s3/sign``. The CDK stack creates one route per key in ``ROUTE_KEYS``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.api_edge import (
    TITLE_MAX_CHARS,
    Request,
    optional_int,
    optional_object,
    optional_str,
    required_str,
    serve,
    text_int,
)
from lambdas.errors import Invalid
from lambdas.upload_api.parts import (
    CHECKSUM_ALGORITHM,
    S3_MAX_OBJECT_BYTES,
    S3_MAX_PARTS,
    part_checksums,
    sha256_checksum,
)
from lambdas.upload_api.rules import (
    S3Operation,
    content_type,
    guess_content_type,
    s3_operation,
)
from lambdas.upload_api.service import NewUpload, SignRequest, UploadApi
from vod.settings import MAX_PRESIGN_SECONDS

MAX_FILENAME_CHARS = 255
#: S3 caps keys at 1,024 bytes; upload IDs are far shorter.
MAX_KEY_CHARS = 1024
MAX_UPLOAD_ID_CHARS = 1024
_QUERY_METADATA = re.compile(r"metadata\[(.+)\]")
_STARTS_UPLOAD = frozenset(
    {S3Operation.PUT_OBJECT, S3Operation.CREATE_MULTIPART_UPLOAD}
)


def post_policy(api: UploadApi, request: Request) -> Any:
    metadata = {
        match.group(1): value
        for name, value in request.query.items()
        if (match := _QUERY_METADATA.fullmatch(name))
    }
    size = request.query.get("size")
    return api.post_policy(
        request.owner,
        _new_upload(
            api,
            request.query,
            metadata,
            size=None
            if size is None
            else text_int(size, "size", low=1, high=S3_MAX_OBJECT_BYTES),
        ),
    )


def create_multipart(api: UploadApi, request: Request) -> Any:
    body = request.json_body()
    metadata = optional_object(body.get("metadata"), "metadata")
    size = optional_int(body.get("size"), "size", low=1, high=S3_MAX_OBJECT_BYTES)
    sign_first = optional_int(
        body.get("signParts"), "signParts", low=1, high=S3_MAX_PARTS
    )
    algorithm = body.get("checksumAlgorithm")
    if algorithm is not None and algorithm != CHECKSUM_ALGORITHM:
        raise Invalid(f"checksumAlgorithm must be {CHECKSUM_ALGORITHM} (or left out)")
    new = dataclasses.replace(
        _new_upload(api, body, metadata, size=size), checksum_algorithm=algorithm
    )
    return api.create_multipart(request.owner, new, sign_first=sign_first)


def list_parts(api: UploadApi, request: Request) -> Any:
    return api.list_parts(request.owner, *_upload_of(request, request.query))


def sign_part(api: UploadApi, request: Request) -> Any:
    number = text_int(
        request.path_param("partNumber"), "partNumber", low=1, high=S3_MAX_PARTS
    )
    checksum = request.query.get("checksum")
    return api.sign_part(
        request.owner,
        *_upload_of(request, request.query),
        number,
        None if checksum is None else sha256_checksum(checksum, "checksum"),
    )


def sign_batch(api: UploadApi, request: Request) -> Any:
    numbers = required_str(
        request.query.get("partNumbers"), "partNumbers", max_chars=MAX_KEY_CHARS * 8
    )
    return api.sign_batch(request.owner, *_upload_of(request, request.query), numbers)


def sign_parts(api: UploadApi, request: Request) -> Any:
    body = request.json_body()
    checksums = body.get("checksums")
    return api.sign_parts(
        request.owner,
        *_upload_of(request, body),
        body.get("partNumbers"),
        None if checksums is None else part_checksums(checksums),
    )


def complete(api: UploadApi, request: Request) -> Any:
    body = request.json_body()
    return api.complete(
        request.owner, *_upload_of(request, request.query), body.get("parts")
    )


def abort(api: UploadApi, request: Request) -> Any:
    return api.abort(request.owner, *_upload_of(request, request.query))


def sign_request(api: UploadApi, request: Request) -> Any:
    """Uppy 6's ``signRequest({method, key, uploadId?, partNumber?,
    contentType?, expiresIn?}) -> {url, key?}``."""
    body = request.json_body()
    upload_id = optional_str(
        body.get("uploadId"), "uploadId", max_chars=MAX_UPLOAD_ID_CHARS
    )
    operation = s3_operation(
        body.get("method"),
        upload_id=upload_id is not None,
        part_number=body.get("partNumber") is not None,
    )
    key = required_str(body.get("key"), "key", max_chars=MAX_KEY_CHARS)
    bucket = body.get("bucket")
    if bucket is not None and bucket != api.settings.source_bucket:
        raise Invalid("bucket: this API signs requests on its own bucket only")
    default_expiry = api.settings.presign_expires_seconds
    asked = optional_int(
        body.get("expiresIn"), "expiresIn", low=1, high=MAX_PRESIGN_SECONDS
    )
    new = None
    if operation in _STARTS_UPLOAD:
        # The requested key's folders are ignored; its name is the file's.
        filename = key.rsplit("/", 1)[-1] or "video"
        new = NewUpload(
            filename=filename,
            content_type=content_type(
                body.get("contentType") or guess_content_type(filename),
                api.settings.allowed_content_types,
                name="contentType",
            ),
        )
    signed = SignRequest(
        operation=operation,
        key=key,
        upload_id=upload_id,
        part_number=body.get("partNumber"),
        expires_in=min(asked or default_expiry, default_expiry),
    )
    return api.sign_request(request.owner, signed, new)


def _new_upload(
    api: UploadApi,
    fields: Mapping[str, Any],
    metadata: Mapping[str, Any],
    *,
    size: int | None,
) -> NewUpload:
    return NewUpload(
        filename=required_str(
            fields.get("filename"), "filename", max_chars=MAX_FILENAME_CHARS
        ),
        content_type=content_type(
            fields.get("type"), api.settings.allowed_content_types
        ),
        title=optional_str(
            metadata.get("title"), "metadata.title", max_chars=TITLE_MAX_CHARS
        ),
        size=size,
    )


def _upload_of(request: Request, fields: Mapping[str, Any]) -> tuple[str, str]:
    """The (key, uploadId) a route acts on: uploadId from the path, key from
    the query string or the body."""
    upload_id = request.path_param("uploadId")
    if len(upload_id) > MAX_UPLOAD_ID_CHARS:
        raise Invalid(f"uploadId must be at most {MAX_UPLOAD_ID_CHARS} characters")
    return required_str(fields.get("key"), "key", max_chars=MAX_KEY_CHARS), upload_id


ROUTES: Mapping[str, Callable[[UploadApi, Request], Any]] = {
    "GET /s3/params": post_policy,
    "POST /s3/multipart": create_multipart,
    "GET /s3/multipart/{uploadId}": list_parts,
    "GET /s3/multipart/{uploadId}/{partNumber}": sign_part,
    "GET /s3/multipart/{uploadId}/batch": sign_batch,
    "POST /s3/multipart/{uploadId}/sign": sign_parts,
    "POST /s3/multipart/{uploadId}/complete": complete,
    "DELETE /s3/multipart/{uploadId}": abort,
    "POST /s3/sign": sign_request,
}
ROUTE_KEYS: tuple[str, ...] = tuple(ROUTES)


@functools.cache
def api() -> UploadApi:
    """Settings and clients, made once per cold start."""
    return UploadApi.from_env()


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    return serve(event, ROUTES, api)
