"""The work ledger on a video's record: one entry per task (the ``video``
job, each chunk, the audio) in the record's ``tasks`` map.

A worker claims a task before it works on it, with a conditional write that
takes a lease; its heartbeat renews the lease while it works. Another
delivery of a task whose lease is alive is left alone; a task whose lease
ran out (its worker died) can be claimed again, which counts an attempt. The
worker that finishes a task marks it done in the same conditional write that
counts it, so a task is counted exactly once however often its job is
delivered.

These are the pure readings of the ledger, shared by the worker, the
dead-letter consumer and the API.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from vod.jobs import (
    AUDIO_TASK,
    STITCH_TASK,
    VIDEO_TASK,
    JobMessage,
    TaskKind,
    chunk_task,
)
from vod.plan import Mode, TranscodePlan

#: Attribute names of a task entry (short: the map is written often).
OWNER = "owner"
LEASE_UNTIL = "leaseUntil"
ATTEMPTS = "attempts"
DONE = "done"
CREDITED = "credited"
CPU_SECONDS = "cpu"
WALL_SECONDS = "wall"
FACTS = "facts"


@dataclasses.dataclass(frozen=True)
class TaskState:
    owner: str | None = None
    #: Epoch seconds after which another worker may claim the task.
    lease_until: float = 0.0
    attempts: int = 0
    done: bool = False
    #: Seconds of media this task has added to the record's progress.
    credited: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: What the finished task produced (JSON), for the task that stitches.
    facts: str = ""

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any] | None) -> TaskState:
        if not raw:
            return cls()
        owner = raw.get(OWNER)
        return cls(
            owner=str(owner) if owner else None,
            lease_until=float(raw.get(LEASE_UNTIL, 0) or 0),
            attempts=int(raw.get(ATTEMPTS, 0) or 0),
            done=bool(raw.get(DONE, False)),
            credited=float(raw.get(CREDITED, 0) or 0),
            cpu_seconds=float(raw.get(CPU_SECONDS, 0) or 0),
            wall_seconds=float(raw.get(WALL_SECONDS, 0) or 0),
            facts=str(raw.get(FACTS, "") or ""),
        )

    def leased(self, now: float) -> bool:
        """Someone holds the task and has renewed it recently."""
        return not self.done and self.owner is not None and self.lease_until > now

    def stalled(self, now: float) -> bool:
        """Someone took the task and stopped renewing it before it was done."""
        return not self.done and self.owner is not None and self.lease_until <= now

    def parsed_facts(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.facts) if self.facts else {}
        return parsed


def task_states(tasks: Mapping[str, Any] | None) -> dict[str, TaskState]:
    return {name: TaskState.from_raw(raw) for name, raw in (tasks or {}).items()}


@dataclasses.dataclass(frozen=True)
class RetryState:
    #: A claimed task's worker stopped renewing its lease: the work will be
    #: taken up again when its job is delivered again.
    retrying: bool
    #: The most attempts any task of the video has made.
    attempts: int


def retry_state(tasks: Mapping[str, Any] | None, now: float) -> RetryState:
    states = task_states(tasks).values()
    return RetryState(
        retrying=any(state.stalled(now) for state in states),
        attempts=max((state.attempts for state in states), default=0),
    )


def encode_tasks(plan: TranscodePlan) -> list[str]:
    """The tasks whose results a chunked video is stitched from."""
    if plan.mode is not Mode.CHUNKED:
        return []
    names = [chunk_task(chunk.index) for chunk in plan.chunks]
    return [*names, AUDIO_TASK] if plan.has_audio else names


def ready_to_stitch(tasks: Mapping[str, Any] | None, plan: TranscodePlan) -> bool:
    states = task_states(tasks)
    names = encode_tasks(plan)
    return bool(names) and all(states.get(name, TaskState()).done for name in names)


def describe_task(job: JobMessage, plan: TranscodePlan | None) -> str:
    """The task in words, for a reason on the record."""
    if job.kind is TaskKind.CHUNK and job.chunk is not None:
        if plan is not None and job.chunk < len(plan.chunks):
            return plan.chunk(job.chunk).describe(len(plan.chunks))
        return f"chunk {job.chunk + 1}"
    if job.task == AUDIO_TASK:
        return "the audio track"
    assert job.task == VIDEO_TASK
    return "the transcode"


def dead_letter_reason(
    job: JobMessage,
    tasks: Mapping[str, Any] | None,
    plan: TranscodePlan | None,
    now: float,
) -> str | None:
    """Why the video fails when ``job`` reached the dead-letter queue, or
    None when it should not fail for it: the task is done, or a live worker
    holds it (the dead-lettered message was a duplicate delivery)."""
    states = task_states(tasks)
    state = states.get(job.task, TaskState())
    what = describe_task(job, plan)
    if state.done and plan is not None and ready_to_stitch(tasks, plan):
        # Its worker, or the next, was to publish the finished video.
        state = states.get(STITCH_TASK, TaskState())
        what = "publishing the finished video"
    if state.done or state.leased(now):
        return None
    if state.attempts == 0:
        return f"{what} was never started: its job was given up after repeated tries"
    times = "once" if state.attempts == 1 else f"{state.attempts} times"
    return (
        f"{what} was started {times} and never finished: the worker stopped "
        "each time without reporting an error (killed, out of memory, or cut off)"
    )
