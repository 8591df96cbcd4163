"""How a job can end other than READY, and what the loop does about each."""

from __future__ import annotations

import re
from pathlib import Path

_URL = re.compile(r"https?://\S+")


class Unprocessable(Exception):
    """The input can never become a video (not a video, truncated, too big for
    this disk): the record goes FAILED with this reason and the message is
    deleted, since a retry would fail the same way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Interrupted(Exception):
    """The worker was told to stop before the job finished: the message is
    released at once so that another worker redoes the job."""


class Superseded(Exception):
    """This worker no longer holds the task (its lease ran out and another
    worker took it), or the video left PROCESSING under it (deleted, failed,
    or finished by another worker): the result is no longer wanted."""


def tool_message(stderr: str, path: Path | str = "") -> str:
    """The last thing ffmpeg/ffprobe said, without our local file path or
    the source's (presigned) URL."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if str(path):
        last = last.replace(f"{path}: ", "").replace(str(path), "the file")
    return _URL.sub("the file", last).replace("the file: ", "")


class OverBudget(Exception):
    """A task ran longer than its time budget: the video FAILS, since a redo
    would take as long."""

    def __init__(self, budget_seconds: float) -> None:
        super().__init__(f"over its {budget_seconds:.0f} s budget")
        self.budget_seconds = budget_seconds
