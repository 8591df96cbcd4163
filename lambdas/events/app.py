"""Publishes video lifecycle events from the table's stream.

Every writer (the upload API, the ingest Lambda, the workers, MediaConvert's
status Lambda, and uploads completed straight against S3) changes the record;
the stream sees them all, so this is the one place that announces UPLOADED,
READY and FAILED on EventBridge and counts READY/FAILED as CloudWatch metrics
(embedded metric format on stdout).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import boto3

from vod.events import (
    DETAIL_TYPE,
    METRICS_NAMESPACE,
    PUBLISHED_STATUSES,
    SOURCE,
    STATUS_METRICS,
    event_detail,
)
from vod.model import Status, Video
from vod.repository import from_wire
from vod.settings import Env, read_str

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


def _image(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return from_wire(raw) if raw else None


def status_changes(
    records: Iterable[Mapping[str, Any]],
) -> Iterable[tuple[str, Video, Status | None]]:
    """(sequence number, new record, previous status) for each stream record
    that moved a video into a published status."""
    for record in records:
        change = record.get("dynamodb", {})
        new = _image(change.get("NewImage"))
        if new is None:
            continue
        old = _image(change.get("OldImage"))
        video = Video.from_item(new)
        previous = Status(old["status"]) if old else None
        if video.status in PUBLISHED_STATUSES and video.status != previous:
            yield str(change.get("SequenceNumber", "")), video, previous


def emf_line(status: Status) -> str | None:
    metric = STATUS_METRICS.get(status)
    if metric is None:
        return None
    return json.dumps(
        {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRICS_NAMESPACE,
                        "Dimensions": [[]],
                        "Metrics": [{"Name": metric, "Unit": "Count"}],
                    }
                ],
            },
            metric: 1,
        }
    )


def publish(
    records: Iterable[Mapping[str, Any]],
    *,
    events: Any,
    bus_name: str,
    playback_base_url: str,
) -> list[dict[str, str]]:
    """Publish the changes in stream order. On the first one EventBridge does
    not take, stop and report it: the stream retries from that record on, so
    nothing is skipped and nothing before it is sent twice."""
    for sequence, video, previous in status_changes(records):
        detail = event_detail(video, previous, playback_base_url)
        try:
            response = events.put_events(
                Entries=[
                    {
                        "Source": SOURCE,
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "EventBusName": bus_name,
                    }
                ]
            )
            accepted = not response.get("FailedEntryCount")
        except Exception:
            logger.exception("publishing failed", extra={"videoId": video.id})
            accepted = False
        if not accepted:
            logger.error("event not accepted; retrying", extra={"videoId": video.id})
            return [{"itemIdentifier": sequence}]
        line = emf_line(video.status)
        if line is not None:
            # CloudWatch reads embedded-metric-format lines from stdout.
            print(line, flush=True)
        logger.info(
            "video status published",
            extra={"videoId": video.id, "status": str(video.status)},
        )
    return []


@functools.cache
def _events_client() -> Any:
    return boto3.client("events")


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    failures = publish(
        event.get("Records", []),
        events=_events_client(),
        bus_name=read_str(Env.EVENT_BUS_NAME),
        playback_base_url=read_str(Env.PLAYBACK_BASE_URL, default=""),
    )
    return {"batchItemFailures": failures}
