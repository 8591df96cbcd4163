"""Dead-lettered transcode jobs: a job that reached the jobs queue's
dead-letter queue fails its video, with a reason in words, unless its task
got done after all.

A job lands here after ``jobsMaxReceiveCount`` deliveries that never
finished it: its workers died, ran out of memory or were cut off (a worker
that meets a known-bad input fails the video itself and deletes the job).
Without this consumer such a video would stay PROCESSING forever, since no
job for its task is left. The reading of the work ledger is
``vod.tasks.dead_letter_reason``; this module only applies it.

While a live worker still holds the task's lease (a duplicate delivery was
dead-lettered, or the lease outlasted the message by a moment), the message
is reported failed so that it comes back after the queue's visibility
timeout and is judged again once the lease has run out or the task is done.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Mapping
from typing import Any

from vod.jobs import JobMessage
from vod.model import TERMINAL, Status
from vod.plan import TranscodePlan
from vod.repository import VideoRepository
from vod.settings import Env, read_str
from vod.tasks import TaskState, dead_letter_reason, task_states

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

#: The statuses of a record whose transcode a job can still be part of.
_IN_FLIGHT = frozenset({Status.QUEUED, Status.PROCESSING})


class Outcome(enum.StrEnum):
    #: The body is no job message; nothing can be done with it.
    MALFORMED = "malformed"
    #: The video is deleted.
    NO_RECORD = "no-record"
    #: The video is READY, FAILED or ABORTED already.
    FINISHED = "finished"
    #: The task is done: the dead-lettered message was a leftover.
    TASK_DONE = "task-done"
    #: A live worker holds the task: judge the message again later.
    TASK_LEASED = "task-leased"
    #: The video is now FAILED with the reason.
    FAILED = "failed"
    #: The record moved on between the read and the write.
    STALE = "stale"

    @property
    def retry(self) -> bool:
        return self is Outcome.TASK_LEASED


def plan_of(raw: Mapping[str, Any] | None) -> TranscodePlan | None:
    """The record's plan, or None when there is none or it cannot be read
    (the reason then names the task without its time range)."""
    if not raw:
        return None
    try:
        return TranscodePlan.from_dict(raw)
    except (KeyError, TypeError, ValueError):
        logger.warning("the record's plan cannot be read; described without it")
        return None


def settle(body: str, repository: VideoRepository, now: float) -> Outcome:
    """What one dead-lettered message does to its video."""
    try:
        job = JobMessage.from_json(body)
    except ValueError as error:
        logger.error("dead-lettered message is no job; dropped: %s", error)
        return Outcome.MALFORMED
    context = {"videoId": job.video_id, "task": job.task}
    video = repository.get(job.video_id)
    if video is None:
        logger.info("dead-lettered job of a deleted video", extra=context)
        return Outcome.NO_RECORD
    if video.status in TERMINAL:
        logger.info(
            "dead-lettered job of a finished video",
            extra={**context, "status": str(video.status)},
        )
        return Outcome.FINISHED
    reason = dead_letter_reason(job, video.tasks, plan_of(video.plan), now)
    if reason is None:
        state = task_states(video.tasks).get(job.task, TaskState())
        if state.leased(now):
            logger.info("a live worker holds the task; judged later", extra=context)
            return Outcome.TASK_LEASED
        logger.info("the dead-lettered job's task is done", extra=context)
        return Outcome.TASK_DONE
    failed = repository.transition(
        job.video_id,
        Status.FAILED,
        fields={"error": reason},
        only_from=_IN_FLIGHT,
    )
    if failed is None:
        logger.info("the record moved on; left alone", extra=context)
        return Outcome.STALE
    logger.warning(
        "video failed by a dead-lettered job", extra={**context, "reason": reason}
    )
    return Outcome.FAILED


@functools.cache
def _repository() -> VideoRepository:
    return VideoRepository(read_str(Env.TABLE_NAME))


def handler(event: Mapping[str, Any], _context: object) -> dict[str, Any]:
    """SQS batch: reports the messages to be seen again (partial batch
    response); every other one is deleted by Lambda."""
    failures = []
    for record in event.get("Records", []):
        message_id = record["messageId"]
        try:
            outcome = settle(record["body"], _repository(), time.time())
        except Exception:
            logger.exception("settling a dead-lettered job failed; retried")
            failures.append({"itemIdentifier": message_id})
            continue
        if outcome.retry:
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
