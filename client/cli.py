"""``vod``: upload videos and follow them through the platform's HTTP API.

    vod upload FILE [--concurrency N] [--state-dir DIR] [--type MEDIA/TYPE]
    vod list
    vod status ID
    vod wait ID [--interval S] [--timeout S]
    vod delete ID

Every command takes ``--api URL`` and ``--token T``, or reads ``VOD_API_URL``
and ``VOD_TOKEN``. Results go to stdout (``upload`` prints the video id alone,
for scripts); progress and errors go to stderr. An expected failure is one
``error:`` line and exit status 1; Ctrl-C is 130, and a later ``upload`` of
the same file resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from client.api import ApiError, UnreachableError, VodApi, VodError
from client.state import STATE_DIR_ENV
from client.uploader import UploadError, upload_file

API_URL_ENV = "VOD_API_URL"
TOKEN_ENV = "VOD_TOKEN"  # noqa: S105 - the variable's name, not a token
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
_FINAL_STATUSES = {"READY": True, "FAILED": False, "ABORTED": False}


class _UploadBar:
    """The uploader's progress as a rich bar (bytes, rate and time left),
    shown from the first part on, so that a refused upload prints only its
    error."""

    def __init__(self, console: Console, description: str) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._description = description
        self._task: TaskID | None = None

    def start(self, total_bytes: int, done_bytes: int) -> None:
        self._task = self._progress.add_task(
            self._description, total=total_bytes, completed=done_bytes
        )
        self._progress.start()

    def advance(self, sent_bytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, sent_bytes)

    def close(self) -> None:
        if self._progress.live.is_started:
            self._progress.stop()


def _upload(args: argparse.Namespace, api: VodApi, err: Console) -> int:
    path = Path(args.file)
    bar = _UploadBar(err, path.name)
    try:
        result = upload_file(
            api,
            path,
            concurrency=args.concurrency,
            progress=bar,
            state_dir=args.state_dir,
            content_type=args.type,
        )
    except (UploadError, UnreachableError) as error:
        raise VodError(f"{error} (run the same command again to resume)") from None
    except KeyboardInterrupt:
        bar.close()
        err.print("interrupted: run the same command again to resume", markup=False)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    resumed = (
        f", {result.skipped_parts} already uploaded" if result.skipped_parts else ""
    )
    if result.checksum:
        # S3 checked every part against its SHA-256; this is theirs, matched
        # against the file's.
        err.print(
            f"sha256 (of the {result.parts} parts' sha256s): {result.checksum}",
            markup=False,
            highlight=False,
        )
    err.print(
        f"uploaded {path.name}: {result.parts} parts{resumed}; video id:",
        markup=False,
        highlight=False,
    )
    print(result.video_id)
    return 0


def _list(_args: argparse.Namespace, api: VodApi, err: Console) -> int:
    count = 0
    for video in api.videos():
        count += 1
        progress = f"{video.get('progress') or 0:>3}%"
        print(
            f"{video['id']}  {video['status']:<10}  {progress}  "
            f"{video.get('createdAt') or '':<20}  {video.get('filename') or ''}"
        )
    if not count:
        err.print("no videos", markup=False)
    return 0


def _status(args: argparse.Namespace, api: VodApi, _err: Console) -> int:
    print(json.dumps(api.video(args.id), indent=2))
    return 0


def _wait(args: argparse.Namespace, api: VodApi, err: Console) -> int:
    """Follow the record until READY (0) or FAILED/ABORTED (an error)."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    video = api.video(args.id)
    if video["status"] not in _FINAL_STATUSES:
        video = _follow(args, api, err, video, deadline)
    status = video["status"]
    if not _FINAL_STATUSES[status]:
        reason = video.get("error") or "no reason given"
        raise VodError(f"video {args.id} {status}: {reason}")
    if video.get("playbackUrl"):
        print(video["playbackUrl"])
    return 0


def _follow(
    args: argparse.Namespace,
    api: VodApi,
    err: Console,
    video: dict[str, Any],
    deadline: float | None,
) -> dict[str, Any]:
    """Poll with a live bar of the record's status and transcode progress."""
    columns = (
        TextColumn("{task.description:<10}", style="bold", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("", total=100)
        while True:
            status = video["status"]
            progress.update(
                task, description=status, completed=video.get("progress") or 0
            )
            if status in _FINAL_STATUSES:
                return video
            if deadline is not None and time.monotonic() >= deadline:
                raise VodError(
                    f"video {args.id} is still {status} after {args.timeout} s"
                )
            time.sleep(args.interval)
            video = api.video(args.id)


def _delete(args: argparse.Namespace, api: VodApi, err: Console) -> int:
    api.delete_video(args.id)
    err.print(f"deleted {args.id}", markup=False, highlight=False)
    return 0


Command = Callable[[argparse.Namespace, VodApi, Console], int]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        default=os.environ.get(API_URL_ENV),
        help=f"the API's base URL (default: ${API_URL_ENV})",
    )
    common.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"a bearer token for the API (default: ${TOKEN_ENV})",
    )
    parser = argparse.ArgumentParser(
        prog="vod", description="Upload videos to the VOD platform and follow them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    upload = commands.add_parser(
        "upload", parents=[common], help="upload a video file (resumes if interrupted)"
    )
    upload.add_argument("file", help="the video file")
    upload.add_argument(
        "--concurrency", type=_positive, default=4, help="parts in flight (default 4)"
    )
    upload.add_argument(
        "--state-dir",
        type=Path,
        help=f"where resume state is kept (default: ${STATE_DIR_ENV}, "
        "else ~/.local/state/vod)",
    )
    upload.add_argument(
        "--type", help="the media type, e.g. video/mp4 (default: from the name)"
    )
    upload.set_defaults(run=_upload)

    commands.add_parser("list", parents=[common], help="list your videos").set_defaults(
        run=_list
    )
    for name, run, text in (
        ("status", _status, "show a video's record"),
        ("delete", _delete, "delete a video, its source and its outputs"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("id", help="the video id")
        command.set_defaults(run=run)

    wait = commands.add_parser(
        "wait", parents=[common], help="follow a video until it is READY or FAILED"
    )
    wait.add_argument("id", help="the video id")
    wait.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls (default 2)"
    )
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    wait.set_defaults(run=_wait)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.api:
        parser.error(f"--api or ${API_URL_ENV} is required")
    if not args.token:
        parser.error(f"--token or ${TOKEN_ENV} is required")
    err = Console(stderr=True)
    run: Command = args.run
    try:
        return run(args, VodApi(args.api, args.token), err)
    except ApiError as error:
        hint = " (check --token or $VOD_TOKEN)" if error.status == 401 else ""
        _fail(f"{error}{hint}")
    except VodError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"{error.filename}: {error.strerror}" if error.filename else str(error))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_ERROR


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
