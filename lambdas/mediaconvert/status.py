"""Status: MediaConvert's job state changes, as EventBridge delivers them,
move the video's record.

- PROGRESSING: QUEUED -> PROCESSING at 0 %;
- STATUS_UPDATE: PROCESSING with ``jobProgress.jobPercentComplete``;
- COMPLETE: READY with the fields the Fargate worker writes, and the cost
  (the job's tier comes from GetJob: the event does not carry it);
- ERROR: FAILED with MediaConvert's error code and message;
- CANCELED: FAILED, since no output will come.

Every move is a conditional transition of the shared model, so a duplicate or
late event (a STATUS_UPDATE after COMPLETE, a PROGRESSING after the first
STATUS_UPDATE) is refused by the table and only logged. A job that finished
before it reported progress goes from QUEUED straight to READY.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from lambdas.mediaconvert.job import (
    VIDEO_ID_KEY,
    TierPrices,
    UnexpectedOutputs,
    job_cost,
    ready_fields,
)
from vod.model import Status
from vod.repository import VideoRepository
from vod.settings import Env, read_str

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

#: A record a job can still change: one that the ingest Lambda queued.
_IN_FLIGHT = frozenset({Status.QUEUED, Status.PROCESSING})

#: A job's AccelerationStatus by its id (GetJob).
AccelerationLookup = Callable[[str], str | None]


@dataclasses.dataclass(frozen=True)
class JobStateChange:
    video_id: str
    job_id: str
    status: str
    detail: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class RecordChange:
    target: Status
    fields: Mapping[str, Any]
    only_from: frozenset[Status]
    remove: tuple[str, ...] = ()


def job_state_change(event: Mapping[str, Any]) -> JobStateChange | None:
    """The change an EventBridge event reports, or None for an event that is
    not a state change of one of our jobs."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    video_id = (detail.get("userMetadata") or {}).get(VIDEO_ID_KEY)
    if not isinstance(video_id, str) or not video_id:
        return None
    return JobStateChange(
        video_id=video_id,
        job_id=str(detail.get("jobId", "")),
        status=str(detail.get("status", "")),
        detail=detail,
    )


def job_acceleration(mediaconvert: Any, job_id: str) -> str | None:
    """The job's AccelerationStatus, as GetJob reports it."""
    status = mediaconvert.get_job(Id=job_id)["Job"].get("AccelerationStatus")
    return str(status) if status else None


def acceleration_status(
    change: JobStateChange, lookup: AccelerationLookup
) -> str | None:
    """Whether the job ran accelerated (and so bills the Professional tier):
    from the event if it says, else from the job itself; None when neither
    can tell, which prices the job at the Basic tier."""
    reported = change.detail.get("accelerationStatus")
    if isinstance(reported, str):
        return reported
    try:
        return lookup(change.job_id)
    except Exception:
        logger.warning(
            "the job's acceleration status is unknown; its cost assumes Basic",
            extra={"videoId": change.video_id, "jobId": change.job_id},
            exc_info=True,
        )
        return None


def record_change(
    change: JobStateChange,
    *,
    prices: TierPrices,
    acceleration: AccelerationLookup,
) -> RecordChange | None:
    """How the record should move for ``change``; None when it should not."""
    detail = change.detail
    if change.status == "PROGRESSING":
        return RecordChange(
            Status.PROCESSING, {"progress": 0}, only_from=frozenset({Status.QUEUED})
        )
    if change.status == "STATUS_UPDATE":
        percent = (detail.get("jobProgress") or {}).get("jobPercentComplete")
        if not isinstance(percent, int | float):
            return None
        return RecordChange(
            Status.PROCESSING,
            {"progress": max(0, min(100, int(percent)))},
            only_from=_IN_FLIGHT,
        )
    if change.status == "COMPLETE":
        output_groups = detail.get("outputGroupDetails", [])
        try:
            fields = ready_fields(output_groups, change.video_id)
        except UnexpectedOutputs as error:
            return RecordChange(
                Status.FAILED,
                {"error": f"MediaConvert finished with unexpected outputs: {error}"},
                only_from=_IN_FLIGHT,
            )
        fields["cost"] = job_cost(
            output_groups,
            acceleration_status=acceleration_status(change, acceleration),
            prices=prices,
        )
        return RecordChange(
            Status.READY, fields, only_from=_IN_FLIGHT, remove=("error",)
        )
    if change.status == "ERROR":
        code = detail.get("errorCode")
        message = detail.get("errorMessage") or "no error message"
        return RecordChange(
            Status.FAILED,
            {"error": f"MediaConvert error {code}: {message}"},
            only_from=_IN_FLIGHT,
        )
    if change.status == "CANCELED":
        return RecordChange(
            Status.FAILED,
            {"error": "the MediaConvert job was canceled"},
            only_from=_IN_FLIGHT,
        )
    return None


def apply(
    change: JobStateChange,
    repository: VideoRepository,
    *,
    prices: TierPrices,
    acceleration: AccelerationLookup,
) -> str:
    """Apply ``change`` to the record; returns what happened, for the log."""
    planned = record_change(change, prices=prices, acceleration=acceleration)
    context = {"videoId": change.video_id, "jobId": change.job_id}
    if planned is None:
        logger.info(
            "job state change needs no record update",
            extra={**context, "jobStatus": change.status},
        )
        return "ignored"
    video = repository.transition(
        change.video_id,
        planned.target,
        fields=planned.fields,
        only_from=planned.only_from,
        remove=planned.remove,
    )
    if video is None:
        logger.info(
            "record is absent or past this job state; event ignored",
            extra={**context, "jobStatus": change.status},
        )
        return "stale"
    logger.info(
        "record updated from job state",
        extra={**context, "jobStatus": change.status, "status": str(video.status)},
    )
    return str(video.status)


@functools.cache
def _repository() -> VideoRepository:
    return VideoRepository(read_str(Env.TABLE_NAME))


@functools.cache
def _prices() -> TierPrices:
    return TierPrices.from_env()


@functools.cache
def _mediaconvert() -> Any:
    # MediaConvert takes requests on its regional endpoint.
    return boto3.client("mediaconvert")


def _acceleration(job_id: str) -> str | None:
    return job_acceleration(_mediaconvert(), job_id)


def handler(event: Mapping[str, Any], _context: object) -> dict[str, str]:
    change = job_state_change(event)
    if change is None:
        logger.warning(
            "event is not a state change of one of our jobs; ignored",
            extra={"detailType": event.get("detail-type"), "id": event.get("id")},
        )
        return {"outcome": "ignored"}
    return {
        "outcome": apply(
            change, _repository(), prices=_prices(), acceleration=_acceleration
        )
    }
