"""One task run's controls: why it must stop, its lease, its time budget,
and the CPU and wall time it used.

The heartbeat thread calls :meth:`TaskRun.beat`: it renews the task's lease
on the record and checks the budget. A run stops (ffmpeg is killed) for the
first of three reasons: the worker is shutting down, the lease was lost (the
task was taken over, or the video failed or is gone), or the budget ran out.
"""

from __future__ import annotations

import enum
import logging
import resource
import threading
import time
from collections.abc import Callable

from worker.errors import Interrupted, OverBudget, Superseded
from worker.logs import event


class StopReason(enum.Enum):
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease lost"
    OVER_BUDGET = "over budget"


class TaskRun:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        on_hold: Callable[[], None] = lambda: None,
    ) -> None:
        self.cancel = threading.Event()
        self._on_hold = on_hold
        self.reason: StopReason | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._renew: Callable[[], bool] | None = None
        self._deadline: float | None = None
        self._budget = 0.0
        self._started = clock()
        self._cpu_started = _cpu_seconds()

    def stop(self, reason: StopReason) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
        self.cancel.set()

    def hold(self, renew: Callable[[], bool]) -> None:
        """Renew the task's lease with ``renew`` on every beat from now on.
        The job is hidden again at once (``on_hold``): a job must stay hidden
        past its task's lease, or a new delivery would find the lease of a
        dead worker still running and have to wait once more."""
        self._renew = renew
        self._on_hold()

    def set_budget(self, seconds: float) -> None:
        """The run may take ``seconds`` from its start."""
        self._budget = seconds
        self._deadline = self._started + seconds

    def beat(self) -> None:
        """Renew the lease; call before extending the job's visibility, so
        that the lease always runs out first."""
        if self._renew is not None and not self.cancel.is_set():
            try:
                held = self._renew()
            except Exception:
                # A failed renewal (throttling, a network blip) is retried at
                # the next beat; the lease outlives a few missed beats.
                event("lease.renew_failed", level=logging.WARNING, exc_info=True)
            else:
                if not held:
                    self.stop(StopReason.LEASE_LOST)
        if self._deadline is not None and self._clock() > self._deadline:
            self.stop(StopReason.OVER_BUDGET)

    def check(self) -> None:
        """Raise what the stop means, if the run was stopped."""
        if not self.cancel.is_set():
            return
        if self.reason is StopReason.LEASE_LOST:
            raise Superseded
        if self.reason is StopReason.OVER_BUDGET:
            raise OverBudget(self._budget)
        raise Interrupted("stop requested")

    @property
    def wall_seconds(self) -> float:
        return self._clock() - self._started

    @property
    def cpu_seconds(self) -> float:
        """CPU time of this process and its finished children (ffmpeg) since
        the run started: the worker runs one task at a time."""
        return _cpu_seconds() - self._cpu_started


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
