"""How a job can end other than READY, and what the loop does about each."""

from __future__ import annotations

from pathlib import Path


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
    """The record left PROCESSING under us (deleted, or finished by another
    worker): the job's result is no longer wanted."""


def tool_message(stderr: str, path: Path) -> str:
    """The last thing ffmpeg/ffprobe said, without our local file path."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1].replace(f"{path}: ", "").replace(str(path), "the file")
