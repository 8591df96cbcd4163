"""The FFmpeg workers of the local run, each replaced when it dies as ECS
replaces a stopped task; one that keeps failing on start is given up."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from local.event_sources import Poller

log = logging.getLogger(__name__)

#: A worker that exits sooner than this after starting died on start.
START_GRACE_SECONDS = 5.0
#: Deaths on start in a row after which a slot is given up.
MAX_START_FAILURES = 3
_WATCH_SECONDS = 0.25


@dataclasses.dataclass
class _Slot:
    number: int
    process: subprocess.Popen[bytes]
    started: float
    start_failures: int = 0
    given_up: bool = False


class WorkerPool(Poller):
    """``count`` processes of ``argv``; slot ``n`` logs to ``worker-n.log``
    and works in its own directory.

    :param env_for: the environment of slot ``n`` (its own work directory)
    """

    def __init__(
        self,
        *,
        count: int,
        argv: list[str],
        cwd: Path,
        env_for: Callable[[int], Mapping[str, str]],
        log_dir: Path,
        stop_seconds: float,
    ) -> None:
        self._count = count
        self._argv = argv
        self._cwd = cwd
        self._env_for = env_for
        self._log_dir = log_dir
        self._stop_seconds = stop_seconds
        self._slots: list[_Slot] = []
        self._logs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        self.replaced = 0
        super().__init__("worker-pool")

    def start(self) -> None:
        for number in range(1, self._count + 1):
            self._slots.append(_Slot(number, self._spawn(number), time.monotonic()))
        super().start()

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The running (or last) process of each slot."""
        with self._lock:
            return [slot.process for slot in self._slots]

    def all_exited(self) -> bool:
        """Every slot was given up: the workers cannot start."""
        with self._lock:
            return bool(self._slots) and all(slot.given_up for slot in self._slots)

    def exit_codes(self) -> list[int | None]:
        return [process.poll() for process in self.processes]

    def _spawn(self, number: int) -> subprocess.Popen[bytes]:
        log_file = (self._log_dir / f"worker-{number}.log").open("ab")
        self._logs.append(log_file)
        return subprocess.Popen(
            self._argv,
            cwd=self._cwd,
            env=dict(self._env_for(number)),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # A process group of its own: the pool stops a worker with its
            # ffmpeg by SIGTERM, as ECS does, rather than the terminal's Ctrl-C
            # reaching them. The same session, though: Linux schedules each
            # session as one group, and a worker's lower priority for its
            # later chunks (``nice``) only counts against its peers' in the
            # same group.
            process_group=0,
        )

    def _run(self) -> None:
        while not self._stopping.wait(_WATCH_SECONDS):
            with self._lock:
                for slot in self._slots:
                    if slot.given_up or slot.process.poll() is None:
                        continue
                    self._replace(slot)

    def _replace(self, slot: _Slot) -> None:
        code = slot.process.returncode
        lived = time.monotonic() - slot.started
        _kill_group(slot.process)
        if code is not None and code > 0 and lived < START_GRACE_SECONDS:
            slot.start_failures += 1
        else:
            slot.start_failures = 0
        if slot.start_failures >= MAX_START_FAILURES:
            slot.given_up = True
            log.warning(
                "worker %d exited %d times on start (last exit code %s); not "
                "restarted: see worker-%d.log",
                slot.number,
                slot.start_failures,
                code,
                slot.number,
            )
            return
        log.info("worker %d exited with code %s; starting another", slot.number, code)
        slot.process = self._spawn(slot.number)
        slot.started = time.monotonic()
        self.replaced += 1

    def stop(self) -> None:
        """SIGTERM to all, SIGKILL to what is left after the grace period,
        with each process's group (its ffmpeg)."""
        super().stop()
        stop_processes(self.processes, self._stop_seconds)
        for log_file in self._logs:
            log_file.close()


def stop_processes(
    processes: list[subprocess.Popen[bytes]], grace_seconds: float
) -> None:
    """SIGTERM to all, then SIGKILL to those still running once
    ``grace_seconds`` have passed, with their process group, so that nothing
    outlives the platform."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Each process leads its own process group; what is left of it
        # (children it could not stop) goes too.
        os.killpg(process.pid, signal.SIGKILL)
