"""The upload function's S3 calls on the source bucket. S3's answers that a
client caused come back as ``UploadGone`` or ``PartsRejected``; every other
S3 error propagates."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

#: S3 error codes that mean the client's part list does not fit the upload.
_PART_ERRORS = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})
_GONE_ERRORS = frozenset({"NoSuchUpload"})
_ABSENT_ERRORS = frozenset({"404", "NoSuchKey", "NotFound"})


class UploadGone(Exception):
    """The multipart upload no longer exists (completed or aborted)."""


class PartsRejected(Exception):
    """S3 refused the part list of a CompleteMultipartUpload."""


class UploadStore:
    def __init__(self, bucket: str, *, client: Any = None) -> None:
        self.bucket = bucket
        # s3v4, because botocore still presigns POST policies with SigV2.
        self._s3 = client or boto3.client("s3", config=Config(signature_version="s3v4"))

    def create_multipart_upload(
        self, key: str, content_type: str, *, checksum_algorithm: str | None = None
    ) -> str:
        extra = {"ChecksumAlgorithm": checksum_algorithm} if checksum_algorithm else {}
        response = self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, **extra
        )
        return str(response["UploadId"])

    def list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        """Every part, across all ListParts pages (1,000 parts each)."""
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            try:
                response = self._s3.list_parts(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
            except ClientError as error:
                _raise_client_caused(error)
                raise
            parts.extend(
                {"PartNumber": p["PartNumber"], "Size": p["Size"], "ETag": p["ETag"]}
                for p in response.get("Parts", [])
            )
            if not response.get("IsTruncated"):
                return parts
            marker = int(response["NextPartNumberMarker"])

    def upload_exists(self, key: str, upload_id: str) -> bool:
        """Whether ``upload_id`` is an open multipart upload of ``key`` (S3
        answers NoSuchUpload for an ID of another key)."""
        try:
            self._s3.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MaxParts=1
            )
        except ClientError as error:
            if _code(error) in _GONE_ERRORS:
                return False
            raise
        return True

    def complete(
        self, key: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> str | None:
        """Complete the upload; S3's SHA-256 of the object when it has one."""
        try:
            response = self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as error:
            _raise_client_caused(error)
            raise
        checksum = response.get("ChecksumSHA256")
        return str(checksum) if checksum else None

    def abort(self, key: str, upload_id: str) -> None:
        """Abort; an upload that is already gone counts as aborted."""
        try:
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )
        except ClientError as error:
            if _code(error) not in _GONE_ERRORS:
                raise

    def object_size(self, key: str) -> int | None:
        """The stored object's size, or None when there is no object."""
        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _code(error) in _ABSENT_ERRORS:
                return None
            raise
        return int(response["ContentLength"])

    def post_policy(
        self,
        key: str,
        *,
        content_type: str,
        min_bytes: int = 1,
        max_bytes: int,
        expires_in: int,
    ) -> dict[str, Any]:
        """A browser form upload of exactly ``key``, of ``content_type``, of
        ``min_bytes`` to ``max_bytes`` bytes, answered with 201 and an XML
        body."""
        fields = {"Content-Type": content_type, "success_action_status": "201"}
        conditions: list[Any] = [
            {"Content-Type": content_type},
            {"success_action_status": "201"},
            ["content-length-range", min_bytes, max_bytes],
        ]
        result: dict[str, Any] = self._s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=expires_in,
        )
        return result


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _raise_client_caused(error: ClientError) -> None:
    code = _code(error)
    if code in _GONE_ERRORS:
        raise UploadGone(code) from error
    if code in _PART_ERRORS:
        message = error.response.get("Error", {}).get("Message", code)
        raise PartsRejected(f"{code}: {message}") from error
