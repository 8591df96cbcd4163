"""Ingest: an S3 ObjectCreated event on ``uploads/`` queues one transcode job.

The record moves UPLOADING/UPLOADED -> QUEUED with a conditional write before
the job is sent, so a duplicate or replayed event finds the record already
QUEUED and sends nothing. Uploads that a browser completed straight against
S3 (Uppy 6) never called our complete route, which is why UPLOADING is a
valid start.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import unquote_plus

import boto3

from lambdas.ingest.mediaconvert import MediaConvertJobSender
from vod.jobs import JobMessage
from vod.keys import parse_upload_key
from vod.model import Status
from vod.repository import UPLOAD_ONLY_ATTRIBUTES, VideoRepository
from vod.settings import Env, MissingSetting, Transcoder, read_int, read_str

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


@dataclasses.dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int | None
    etag: str | None
    sequencer: str | None


class JobSender(Protocol):
    def send(self, job: JobMessage) -> None: ...


class SqsJobSender:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self._queue_url = queue_url
        self._sqs = sqs or boto3.client("sqs")

    def send(self, job: JobMessage) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=job.to_json())


def object_created_records(event: Mapping[str, Any]) -> Iterator[ObjectCreated]:
    """The ObjectCreated records of an S3 notification event. Keys arrive
    URL-encoded with '+' for spaces."""
    for record in event.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3", {})
        obj = s3.get("object", {})
        size = obj.get("size")
        yield ObjectCreated(
            bucket=s3.get("bucket", {}).get("name", ""),
            key=unquote_plus(obj.get("key", "")),
            size=int(size) if size is not None else None,
            etag=obj.get("eTag"),
            sequencer=obj.get("sequencer"),
        )


def queue_upload(
    created: ObjectCreated,
    repository: VideoRepository,
    jobs: JobSender,
    *,
    max_upload_bytes: int | None = None,
) -> str:
    """Queue one job for ``created``; returns what happened, for the log.

    An object above ``max_upload_bytes`` fails its record instead: only a POST
    policy can bound a size at S3, and presigned PUTs and parts, or a multipart
    upload completed straight against S3, can carry more than was declared."""
    parsed = parse_upload_key(created.key)
    if parsed is None:
        logger.warning(
            "object is not an upload key this API made; ignored",
            extra={"bucket": created.bucket, "key": created.key},
        )
        return "ignored"
    _, video_id = parsed
    if (
        max_upload_bytes is not None
        and created.size is not None
        and created.size > max_upload_bytes
    ):
        failed = repository.transition(
            video_id,
            Status.FAILED,
            fields={
                "size": created.size,
                "error": f"the upload is {created.size} bytes, above the "
                f"{max_upload_bytes}-byte maximum",
            },
            only_from=(Status.UPLOADING, Status.UPLOADED),
            remove=UPLOAD_ONLY_ATTRIBUTES,
            key=created.key,
        )
        if failed:
            logger.warning(
                "upload above the size limit; not transcoded",
                extra={"videoId": video_id, "size": created.size},
            )
            return "too-large"
        # The record is past its upload: a replay, or a replacement (below).
    fields: dict[str, Any] = {"progress": 0}
    if created.size is not None:
        fields["size"] = created.size
    if created.etag:
        fields["source_etag"] = created.etag
    result = repository.try_transition(
        video_id,
        Status.QUEUED,
        only_from=(Status.UPLOADING, Status.UPLOADED),
        fields=fields,
        remove=UPLOAD_ONLY_ATTRIBUTES,
        key=created.key,
    )
    if result.video is None:
        existing = result.current
        if existing is None or existing.key != created.key:
            logger.warning(
                "no video record matches the uploaded key; ignored",
                extra={"bucket": created.bucket, "key": created.key},
            )
            return "no-record"
        if _replaced(existing.source_etag, created.etag):
            return _fail_replaced(repository, video_id, existing.status)
        logger.info(
            "video already moved past upload; duplicate event ignored",
            extra={"videoId": video_id, "status": str(existing.status)},
        )
        return "duplicate"
    job = JobMessage(
        video_id=video_id,
        bucket=created.bucket,
        key=created.key,
        etag=created.etag,
        sequencer=created.sequencer,
    )
    try:
        jobs.send(job)
    except Exception as error:
        # The record is QUEUED but no job exists: say so on the record rather
        # than leave it waiting forever. The original stays in the bucket.
        repository.transition(
            video_id,
            Status.FAILED,
            fields={"error": f"could not queue the transcode job: {error}"},
        )
        logger.exception(
            "sending the transcode job failed", extra={"videoId": video_id}
        )
        return "failed"
    logger.info("transcode job queued", extra={"videoId": video_id, "key": created.key})
    return "queued"


def _replaced(queued: str | None, created: str | None) -> bool:
    """Whether an event is about another object than the one queued: a
    replay of the same upload has the same ETag."""
    return bool(queued and created) and _unquoted(queued) != _unquoted(created)


def _unquoted(etag: str | None) -> str:
    return (etag or "").strip('"')


def _fail_replaced(repository: VideoRepository, video_id: str, status: Status) -> str:
    """The original was written again after it was queued (a form upload's
    policy is good for a few minutes): the video no longer matches it, and
    its size was never checked. A video still on its way fails; a finished
    one keeps its outputs, and the log says what happened."""
    failed = repository.transition(
        video_id,
        Status.FAILED,
        fields={
            "error": "the uploaded file was replaced after its upload completed; "
            "upload the new file as a new video"
        },
    )
    logger.warning(
        "the original of a video was replaced after its upload",
        extra={"videoId": video_id, "status": str(status)},
    )
    return "replaced" if failed else "replaced-after-finish"


@functools.cache
def _dependencies() -> tuple[VideoRepository, JobSender, int]:
    return (
        VideoRepository(read_str(Env.TABLE_NAME)),
        job_sender(),
        read_int(Env.MAX_UPLOAD_BYTES),
    )


def job_sender(env: Mapping[str, str] | None = None) -> JobSender:
    """The jobs queue of the Fargate workers, or MediaConvert, as the stack's
    ``transcoder`` knob set ``Env.TRANSCODER``."""
    transcoder = read_str(Env.TRANSCODER, env, default=Transcoder.FARGATE)
    if transcoder == Transcoder.MEDIACONVERT:
        return MediaConvertJobSender.from_env(env)
    if transcoder == Transcoder.FARGATE:
        return SqsJobSender(read_str(Env.JOBS_QUEUE_URL, env))
    raise MissingSetting(
        f"environment variable {Env.TRANSCODER} must be one of "
        f"{', '.join(Transcoder)}, got {transcoder!r}"
    )


def handler(event: Mapping[str, Any], _context: object) -> dict[str, list[str]]:
    repository, jobs, max_upload_bytes = _dependencies()
    outcomes = [
        queue_upload(created, repository, jobs, max_upload_bytes=max_upload_bytes)
        for created in object_created_records(event)
    ]
    return {"outcomes": outcomes}
