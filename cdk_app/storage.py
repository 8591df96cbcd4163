"""Storage: the bucket that receives uploads and the bucket that serves HLS.

Both buckets are private (playback goes through CloudFront with OAC), SSL
only, encrypted and access-logged. Users of the construct get prefix-scoped
``grant_*`` methods instead of the buckets' broad ``grant_read_write``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from vod.captions import CAPTIONS_FOLDER, SUBTITLES_FOLDER
from vod.keys import MASTER_PLAYLIST, OUTPUTS_PREFIX, UPLOADS_PREFIX

#: Key patterns of every video's caption files as stored and of its published
#: subtitle renditions (before the final ``*``), and of its master playlist.
CAPTION_FILES = f"{OUTPUTS_PREFIX}*/{CAPTIONS_FOLDER}"
SUBTITLE_RENDITIONS = f"{OUTPUTS_PREFIX}*/{SUBTITLES_FOLDER}"
MASTER_PLAYLISTS = f"{OUTPUTS_PREFIX}*/{MASTER_PLAYLIST}"

#: Headers a browser sends to S3 in the upload flows of the upload API:
#: presigned PUTs, POST-policy forms, and checksummed parts.
#: ``if-none-match``: a single PUT is signed to write only onto a free key.
UPLOAD_ALLOWED_HEADERS = (
    "content-type",
    "content-disposition",
    "if-none-match",
    "x-amz-checksum-*",
)
#: Uppy reads the part ETag to complete, and Location after a POST upload.
UPLOAD_EXPOSED_HEADERS = ("ETag", "Location")
ACCESS_LOG_RETENTION = Duration.days(90)


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    access_logs: s3.IBucket,
    access_logs_prefix: str,
    removal_policy: RemovalPolicy,
    **props: Any,
) -> s3.Bucket:
    """One way to make a private bucket of the stack: public access blocked,
    TLS 1.2 only, encrypted, and its server access logs under
    ``access_logs_prefix`` in ``access_logs``; ``props`` say what differs."""
    return s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=access_logs_prefix,
        removal_policy=removal_policy,
        **props,
    )


class VideoStorage(Construct):
    """The source (uploads) and output (HLS) buckets, plus their access logs.

    :param allowed_origins: browser origins for CORS on both buckets.
    :param abort_incomplete_uploads_after_days: Default 3. Unfinished multipart
        uploads under ``uploads/`` are aborted after this many days, freeing
        their parts.
    :param originals_transition_after_days: Default None (originals stay in
        S3 Standard). Otherwise originals under ``uploads/`` move to S3
        Glacier Instant Retrieval after this many days.
    :param removal_policy: Default RETAIN. What happens to the buckets when
        the stack is deleted; DESTROY fails on a non-empty bucket.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        allowed_origins: Sequence[str],
        abort_incomplete_uploads_after_days: int = 3,
        originals_transition_after_days: int | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        if not allowed_origins:
            raise ValueError(
                "VideoStorage needs at least one allowed origin for browser "
                "uploads, e.g. allowed_origins=['https://app.example.com']"
            )

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            # CloudFront's standard logs are delivered with an ACL.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireAccessLogs", expiration=ACCESS_LOG_RETENTION)
            ],
            removal_policy=removal_policy,
        )

        upload_rules = [
            s3.LifecycleRule(
                id="AbortIncompleteUploads",
                prefix=UPLOADS_PREFIX,
                abort_incomplete_multipart_upload_after=Duration.days(
                    abort_incomplete_uploads_after_days
                ),
            )
        ]
        if originals_transition_after_days is not None:
            upload_rules.append(
                s3.LifecycleRule(
                    id="ArchiveOriginals",
                    prefix=UPLOADS_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(
                                originals_transition_after_days
                            ),
                        )
                    ],
                )
            )

        self.source_bucket = secure_bucket(
            self,
            "SourceBucket",
            access_logs=self.access_logs_bucket,
            access_logs_prefix="source/",
            removal_policy=removal_policy,
            lifecycle_rules=upload_rules,
        )

        self.output_bucket = secure_bucket(
            self,
            "OutputBucket",
            access_logs=self.access_logs_bucket,
            access_logs_prefix="output/",
            removal_policy=removal_policy,
        )
        self.allow_origins(allowed_origins)

    def allow_origins(self, origins: Sequence[str]) -> None:
        """Let pages on ``origins`` upload to the source bucket and read the
        output bucket. A page whose origin is a token of the stack (the web
        app's distribution) is allowed after the buckets exist."""
        self.source_bucket.add_cors_rule(
            allowed_methods=[
                s3.HttpMethods.PUT,
                s3.HttpMethods.POST,
                s3.HttpMethods.GET,
                s3.HttpMethods.DELETE,
                s3.HttpMethods.HEAD,
            ],
            allowed_origins=list(origins),
            allowed_headers=list(UPLOAD_ALLOWED_HEADERS),
            exposed_headers=list(UPLOAD_EXPOSED_HEADERS),
            max_age=3600,
        )
        self.output_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
            allowed_origins=list(origins),
            allowed_headers=["range"],
            exposed_headers=["ETag", "Content-Length", "Content-Range"],
            max_age=3600,
        )

    def notify_on_upload(self, function: lambda_.IFunction) -> None:
        """Invoke ``function`` for every object created under ``uploads/``:
        single PUTs, POST-policy forms, and completed multipart uploads (which
        emit CompleteMultipartUpload, not Put)."""
        destination = s3n.LambdaDestination(function)
        only_uploads = s3.NotificationKeyFilter(prefix=UPLOADS_PREFIX)
        for event in (
            s3.EventType.OBJECT_CREATED_PUT,
            s3.EventType.OBJECT_CREATED_POST,
            s3.EventType.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD,
        ):
            self.source_bucket.add_event_notification(event, destination, only_uploads)

    def grant_upload(self, grantee: iam.IGrantable) -> iam.Grant:
        """Create, upload parts of, list parts of and abort uploads under
        ``uploads/``. s3:PutObject covers CreateMultipartUpload, UploadPart and
        CompleteMultipartUpload; presigned URLs act with these rights."""
        return self._grant(
            grantee,
            self.source_bucket,
            UPLOADS_PREFIX,
            "s3:PutObject",
            "s3:AbortMultipartUpload",
            "s3:ListMultipartUploadParts",
        )

    def grant_read_uploads(self, grantee: iam.IGrantable) -> iam.Grant:
        """GetObject (and so HeadObject) on originals under ``uploads/``, and
        ListBucket for that prefix: without it S3 answers a missing key with
        403, not 404, and a reader cannot tell "gone" from "forbidden"."""
        self._grant_list(grantee, self.source_bucket, UPLOADS_PREFIX)
        return self._grant(grantee, self.source_bucket, UPLOADS_PREFIX, "s3:GetObject")

    def grant_abort_uploads(self, grantee: iam.IGrantable) -> iam.Grant:
        """Abort an open multipart upload under ``uploads/`` (deleting a video
        that is still uploading)."""
        return self._grant(
            grantee, self.source_bucket, UPLOADS_PREFIX, "s3:AbortMultipartUpload"
        )

    def grant_delete_uploads(self, grantee: iam.IGrantable) -> iam.Grant:
        return self._grant(
            grantee, self.source_bucket, UPLOADS_PREFIX, "s3:DeleteObject"
        )

    def grant_write_outputs(self, grantee: iam.IGrantable) -> iam.Grant:
        return self._grant(grantee, self.output_bucket, OUTPUTS_PREFIX, "s3:PutObject")

    def grant_read_outputs(self, grantee: iam.IGrantable) -> iam.Grant:
        return self._grant(grantee, self.output_bucket, OUTPUTS_PREFIX, "s3:GetObject")

    def grant_delete_outputs(self, grantee: iam.IGrantable) -> iam.Grant:
        """Delete a video's outputs: list its folder, then delete the objects."""
        self._grant_list(grantee, self.output_bucket, OUTPUTS_PREFIX)
        return self._grant(
            grantee, self.output_bucket, OUTPUTS_PREFIX, "s3:DeleteObject"
        )

    def grant_write_captions(self, grantee: iam.IGrantable) -> iam.Grant:
        """Store caption files under each video's ``captions/`` folder."""
        return self._grant(grantee, self.output_bucket, CAPTION_FILES, "s3:PutObject")

    def grant_publish_captions(self, grantee: iam.IGrantable) -> None:
        """Read caption files; write and delete subtitle renditions; read and
        rewrite master playlists (only those: no video or audio object). And
        ListBucket on ``videos/``, so that a deleted video's files are 404,
        not 403, and its late stream records are skipped, not retried."""
        bucket = self.output_bucket
        self._grant_list(grantee, bucket, OUTPUTS_PREFIX)
        self._grant(grantee, bucket, CAPTION_FILES, "s3:GetObject", "s3:DeleteObject")
        self._grant(
            grantee, bucket, SUBTITLE_RENDITIONS, "s3:PutObject", "s3:DeleteObject"
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetObject", "s3:PutObject"],
            resource_arns=[bucket.arn_for_objects(MASTER_PLAYLISTS)],
        )

    @staticmethod
    def _grant_list(grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str) -> None:
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:ListBucket"],
            resource_arns=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )

    @staticmethod
    def _grant(
        grantee: iam.IGrantable, bucket: s3.IBucket, prefix: str, *actions: str
    ) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[bucket.arn_for_objects(f"{prefix}*")],
        )
