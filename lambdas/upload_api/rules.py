"""Request rules of the upload API that need no AWS: content types, and which
S3 operation an Uppy 6 ``signRequest`` request stands for."""

from __future__ import annotations

import enum
import mimetypes
import re
from collections.abc import Sequence

from lambdas.errors import Invalid

# RFC 9110 token characters, lowercased: "type/subtype".
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def content_type(value: object, allowed: Sequence[str], *, name: str = "type") -> str:
    """The media type, lowercased and without parameters, if a pattern in
    ``allowed`` (``video/*`` or an exact ``video/mp4``) admits it."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{name} is required, e.g. video/mp4")
    media_type = value.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise Invalid(f"{name} {value!r} is not a media type like video/mp4")
    major = media_type.split("/", 1)[0]
    for pattern in allowed:
        if pattern == media_type or pattern == f"{major}/*":
            return media_type
    raise Invalid(f"{name} {media_type} is not allowed; allowed: {', '.join(allowed)}")


def guess_content_type(filename: str) -> str | None:
    """Uppy 6 may sign a PUT without a content type; the file name's
    extension is then the only hint."""
    return mimetypes.guess_type(filename, strict=False)[0]


class S3Operation(enum.StrEnum):
    PUT_OBJECT = "PutObject"
    CREATE_MULTIPART_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    LIST_PARTS = "ListParts"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"


#: How @uppy/aws-s3 6 spells each operation in a signRequest request:
#: (method, carries uploadId, carries partNumber).
_OPERATIONS = {
    ("PUT", False, False): S3Operation.PUT_OBJECT,
    ("POST", False, False): S3Operation.CREATE_MULTIPART_UPLOAD,
    ("PUT", True, True): S3Operation.UPLOAD_PART,
    ("GET", True, False): S3Operation.LIST_PARTS,
    ("POST", True, False): S3Operation.COMPLETE_MULTIPART_UPLOAD,
    ("DELETE", True, False): S3Operation.ABORT_MULTIPART_UPLOAD,
}


#: The HTTP method each operation is signed for.
SIGNED_METHODS = {operation: shape[0] for shape, operation in _OPERATIONS.items()}


def s3_operation(method: object, *, upload_id: bool, part_number: bool) -> S3Operation:
    if not isinstance(method, str) or not method:
        raise Invalid("method is required, e.g. PUT")
    operation = _OPERATIONS.get((method.upper(), upload_id, part_number))
    if operation is None:
        shape = f"{method.upper()} {'with' if upload_id else 'without'} uploadId"
        if part_number:
            shape += " and with partNumber"
        raise Invalid(
            f"method: {shape} is not a request this API signs; it signs "
            f"{', '.join(op.value for op in S3Operation)} only",
        )
    return operation
