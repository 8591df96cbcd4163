"""The worker's side of the work ledger on the record (``vod.tasks``): claim
a task with a lease, renew it, credit progress, finish it, and the writes
that move a chunked video towards READY. Every write is conditional on this
worker holding the task and the video still being transcoded, so a worker
that lost its lease, or whose video failed or was deleted, learns it and
stops instead of writing over another worker's results.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping
from typing import Any

from vod.jobs import VIDEO_TASK
from vod.model import TERMINAL, Status, Video
from vod.plan import TranscodePlan
from vod.repository import TransitionResult, Update, VideoRepository
from vod.tasks import (
    ATTEMPTS,
    CPU_SECONDS,
    CREDITED,
    DONE,
    FACTS,
    LEASE_UNTIL,
    OWNER,
    WALL_SECONDS,
    TaskState,
)
from worker.errors import Superseded

_WORKING = frozenset({Status.PROCESSING})
#: The video task starts the transcode: it may find the record QUEUED.
_STARTABLE = frozenset({Status.QUEUED, Status.PROCESSING})


class ClaimState(enum.Enum):
    #: This worker holds the task now.
    CLAIMED = "claimed"
    #: The task is finished; nothing to do for it.
    DONE = "done"
    #: Another worker holds a live lease on it.
    BUSY = "busy"
    #: The video is gone or finished (READY, FAILED): nothing to do.
    GONE = "gone"
    #: The video is not ready for this task yet (not queued, not planned).
    EARLY = "early"


@dataclasses.dataclass(frozen=True)
class Claim:
    state: ClaimState
    video: Video | None = None
    task: TaskState = dataclasses.field(default_factory=TaskState)
    #: For BUSY: seconds until the holder's lease runs out.
    wait_seconds: float = 0.0


class Ledger:
    def __init__(
        self,
        repository: VideoRepository,
        *,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self.owner = owner
        self._lease_seconds = lease_seconds
        self._clock = clock

    # --- claiming ------------------------------------------------------------

    def claim(self, video_id: str, task: str) -> Claim:
        """Take ``task`` of the video: fresh, or again after its holder's
        lease ran out (one more attempt). The video task also moves the
        record from QUEUED to PROCESSING."""
        video = self.repository.get(video_id)
        for _ in range(3):
            refusal = self._refusal(video, task)
            if refusal is not None:
                return refusal
            assert video is not None
            result = self.repository.apply(video_id, self._claim_update(video, task))
            if result.video is not None:
                return Claim(
                    ClaimState.CLAIMED,
                    result.video,
                    TaskState.from_raw((result.video.tasks or {}).get(task)),
                )
            # Someone wrote in between: judge again from the record as it is.
            video = result.current
        return Claim(ClaimState.BUSY, video, wait_seconds=1.0)

    def _refusal(self, video: Video | None, task: str) -> Claim | None:
        if video is None or video.status in TERMINAL:
            return Claim(ClaimState.GONE, video)
        allowed = _STARTABLE if task == VIDEO_TASK else _WORKING
        if video.status not in allowed:
            return Claim(ClaimState.EARLY, video)
        state = TaskState.from_raw((video.tasks or {}).get(task))
        if state.done:
            return Claim(ClaimState.DONE, video, state)
        now = self._clock()
        if state.leased(now) and state.owner != self.owner:
            return Claim(
                ClaimState.BUSY, video, state, wait_seconds=state.lease_until - now
            )
        return None

    def _claim_update(self, video: Video, task: str) -> Update:
        now = self._clock()
        update = Update()
        tasks = video.tasks
        current = (tasks or {}).get(task)
        if tasks is None:
            update.set("tasks", {task: self._fresh_entry(now)})
            update.require(f"attribute_not_exists({update.path('tasks')})")
        elif current is None:
            update.set(f"tasks.{task}", self._fresh_entry(now))
            update.require(f"attribute_not_exists({update.path(f'tasks.{task}')})")
        else:
            update.set(f"tasks.{task}.{OWNER}", self.owner)
            update.set(f"tasks.{task}.{LEASE_UNTIL}", now + self._lease_seconds)
            update.increment(f"tasks.{task}.{ATTEMPTS}")
            # Still as we read it: not done, and not renewed since.
            update.require_equal(f"tasks.{task}.{DONE}", False)
            update.require_equal(
                f"tasks.{task}.{LEASE_UNTIL}", current.get(LEASE_UNTIL, 0)
            )
        if task == VIDEO_TASK:
            update.set("status", str(Status.PROCESSING))
            update.remove("error")
            update.require_status(_STARTABLE)
        else:
            update.require_status(_WORKING)
        return update

    def _fresh_entry(self, now: float) -> dict[str, Any]:
        return {
            OWNER: self.owner,
            LEASE_UNTIL: now + self._lease_seconds,
            ATTEMPTS: 1,
            DONE: False,
            CREDITED: 0,
        }

    # --- while working -----------------------------------------------------------

    def _held(self, update: Update, task: str) -> Update:
        update.require_equal(f"tasks.{task}.{OWNER}", self.owner)
        update.require_equal(f"tasks.{task}.{DONE}", False)
        return update.require_status(_WORKING)

    def renew(self, video_id: str, task: str) -> bool:
        """Extend the lease; False when this worker no longer holds the task
        (taken over, or the video failed or is gone)."""
        update = Update().set(
            f"tasks.{task}.{LEASE_UNTIL}", self._clock() + self._lease_seconds
        )
        return (
            self.repository.apply(video_id, self._held(update, task)).video is not None
        )

    def report(self, video_id: str, task: str, facts: str) -> Video:
        """What a held task has produced so far; returns the record."""
        update = Update().set(f"tasks.{task}.{FACTS}", facts)
        result = self.repository.apply(video_id, self._held(update, task))
        if result.video is None:
            raise Superseded
        return result.video

    def release(self, video_id: str, task: str) -> None:
        """Give the task up before its lease runs out (the worker is
        stopping), so that the job's next delivery takes it at once."""
        update = Update().set(f"tasks.{task}.{LEASE_UNTIL}", 0)
        self.repository.apply(video_id, self._held(update, task))

    def credit(self, video_id: str, task: str, *, credited: float, now: float) -> None:
        """Add the media seconds between ``credited`` (what the task added to
        the video's progress so far) and ``now`` to the progress. Raises
        Superseded when the task is no longer this worker's."""
        update = Update()
        update.set(f"tasks.{task}.{CREDITED}", now)
        update.add("encoded", now - credited)
        update.require_equal(f"tasks.{task}.{CREDITED}", credited)
        if self.repository.apply(video_id, self._held(update, task)).video is None:
            raise Superseded

    def finish(
        self,
        video_id: str,
        task: str,
        *,
        cpu_seconds: float,
        wall_seconds: float,
        facts: str = "",
        count_chunk: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> Video:
        """Mark the task done with what it produced; a chunk is counted in
        the same write, so exactly once. Returns the record after the write,
        in which exactly one finisher sees every task done."""
        update = Update()
        update.set(f"tasks.{task}.{DONE}", True)
        update.set(f"tasks.{task}.{CPU_SECONDS}", round(cpu_seconds, 3))
        update.set(f"tasks.{task}.{WALL_SECONDS}", round(wall_seconds, 3))
        if facts:
            update.set(f"tasks.{task}.{FACTS}", facts)
        for name, value in (fields or {}).items():
            update.set(name, value)
        if count_chunk:
            update.add("chunks_done", 1)
        result = self.repository.apply(video_id, self._held(update, task))
        if result.video is None:
            raise Superseded
        return result.video

    def set_plan(
        self, video_id: str, plan: TranscodePlan, fields: Mapping[str, Any]
    ) -> Video:
        """Store the plan (once: a redone video task keeps the first plan)."""
        update = Update()
        update.set_if_absent("plan", plan.to_dict())
        for name, value in fields.items():
            update.set(name, value)
        result = self.repository.apply(video_id, self._held(update, VIDEO_TASK))
        if result.video is None:
            raise Superseded
        return result.video

    def mark_playable(self, video_id: str, *, until: float, playback: str) -> bool:
        """Record that the first ``until`` seconds play; only ever grows."""
        update = Update()
        update.set("playable_until", until)
        update.set("playback", playback)
        path = update.path("playable_until")
        update.require(
            f"(attribute_not_exists({path}) OR {path} < {update.value(until)})"
        )
        update.require_status(_WORKING)
        return self.repository.apply(video_id, update).video is not None

    def ready(
        self,
        video_id: str,
        task: str,
        fields: Mapping[str, Any],
        *,
        cpu_seconds: float,
        wall_seconds: float,
    ) -> Video:
        """PROCESSING -> READY, by the holder of ``task``, which is done with
        it; Superseded when it is not (any more) this worker's to finish."""
        update = Update()
        update.set("status", str(Status.READY))
        update.set(f"tasks.{task}.{DONE}", True)
        update.set(f"tasks.{task}.{CPU_SECONDS}", round(cpu_seconds, 3))
        update.set(f"tasks.{task}.{WALL_SECONDS}", round(wall_seconds, 3))
        for name, value in fields.items():
            update.set(name, value)
        update.remove("error")
        update.remove("playable_until")
        result: TransitionResult = self.repository.apply(
            video_id, self._held(update, task)
        )
        if result.video is None:
            raise Superseded
        return result.video

    def fail(self, video_id: str, reason: str) -> bool:
        """The video FAILED with ``reason`` (if it is still being made)."""
        return (
            self.repository.transition(
                video_id,
                Status.FAILED,
                fields={"error": reason},
                remove=("playable_until",),
                only_from=_STARTABLE,
            )
            is not None
        )
