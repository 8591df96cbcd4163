"""The captions function: the table's stream (publish tracks as records
change; start automatic captions at READY) and Amazon Transcribe's job
state changes from EventBridge (add the finished job's track)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import boto3

from lambdas.captions.publisher import CaptionsPublisher
from lambdas.captions.transcribe import EVENT_SOURCE, AutoCaptions
from vod.model import Status, Video
from vod.repository import VideoRepository, from_wire
from vod.settings import CaptionsSettings

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


def changes(
    records: Iterable[Mapping[str, Any]],
) -> Iterable[tuple[str, Video | None, Video]]:
    """(sequence number, old record, new record) of each stream record that
    inserted or modified a video."""
    for record in records:
        change = record.get("dynamodb", {})
        new = change.get("NewImage")
        if not new:
            continue
        old = change.get("OldImage")
        yield (
            str(change.get("SequenceNumber", "")),
            Video.from_item(from_wire(old)) if old else None,
            Video.from_item(from_wire(new)),
        )


def on_stream(
    records: Iterable[Mapping[str, Any]],
    *,
    publisher: CaptionsPublisher,
    auto: AutoCaptions | None,
) -> list[dict[str, str]]:
    """Handle the changes in order; on the first that fails, stop and report
    it, so the stream retries from it and skips nothing."""
    for sequence, old, new in changes(records):
        try:
            publisher.record_changed(old, new)
            became_ready = new.status is Status.READY and (
                old is None or old.status is not Status.READY
            )
            if auto is not None and became_ready:
                auto.start(new)
        except Exception:
            logger.exception(
                "captions not brought up to date", extra={"videoId": new.id}
            )
            return [{"itemIdentifier": sequence}]
    return []


@functools.cache
def _settings() -> CaptionsSettings:
    return CaptionsSettings.from_env()


@functools.cache
def _publisher() -> CaptionsPublisher:
    settings = _settings()
    return CaptionsPublisher(
        s3=boto3.client("s3"),
        bucket=settings.output_bucket,
        videos=VideoRepository(settings.table_name),
    )


@functools.cache
def _auto() -> AutoCaptions | None:
    settings = _settings()
    if not settings.auto_captions:
        return None
    return AutoCaptions(
        transcribe=boto3.client("transcribe"),
        s3=boto3.client("s3"),
        source_bucket=settings.source_bucket,
        output_bucket=settings.output_bucket,
        videos=VideoRepository(settings.table_name),
    )


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    if event.get("source") == EVENT_SOURCE:
        auto = _auto()
        if auto is not None:
            auto.job_finished(event.get("detail") or {})
        return {}
    failures = on_stream(event.get("Records", []), publisher=_publisher(), auto=_auto())
    return {"batchItemFailures": failures}
