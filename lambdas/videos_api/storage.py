"""The videos function's S3 calls: storing caption files, removing a
video's source and outputs."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError


class ObjectsNotDeleted(RuntimeError):
    """S3 kept some objects of a DeleteObjects batch."""


class VideoObjects:
    def __init__(
        self, *, source_bucket: str, output_bucket: str, client: Any = None
    ) -> None:
        self._source_bucket = source_bucket
        self._output_bucket = output_bucket
        self._s3 = client or boto3.client("s3")

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an open multipart upload; one already gone is fine."""
        try:
            self._s3.abort_multipart_upload(
                Bucket=self._source_bucket, Key=key, UploadId=upload_id
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    def delete_source(self, key: str) -> None:
        # DeleteObject succeeds on an absent key, so a retried delete is fine.
        self._s3.delete_object(Bucket=self._source_bucket, Key=key)

    def put_captions(self, key: str, webvtt: str) -> None:
        self._s3.put_object(
            Bucket=self._output_bucket,
            Key=key,
            Body=webvtt.encode(),
            ContentType="text/vtt; charset=utf-8",
        )

    def delete_outputs(self, prefix: str) -> None:
        """Delete every object under ``prefix``: each ListObjectsV2 page holds
        at most 1,000 keys, which is what one DeleteObjects call takes."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._output_bucket, Prefix=prefix):
            batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if batch:
                response = self._s3.delete_objects(
                    Bucket=self._output_bucket,
                    Delete={"Objects": batch, "Quiet": True},
                )
                if response.get("Errors"):
                    first = response["Errors"][0]
                    raise ObjectsNotDeleted(
                        f"{len(response['Errors'])} objects under {prefix} were "
                        f"not deleted, e.g. {first.get('Key')}: {first.get('Code')}"
                    )
