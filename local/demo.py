"""``make demo``: the platform from ``cdk.out`` on this machine, one video
taken through it end to end with the ``vod`` CLI, and the page served until
Ctrl-C (``python -m local.demo --help``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from local.container import DockerfileError
from local.lambda_runtime import HandlerError
from local.runner import DEMO_EMAIL, DEMO_USER, ROOT, LocalPlatform, VideoFailed
from local.template import TemplateError, WiringError
from vod.plan import clock

DEMO_DIR = Path(".demo")
WEB_ROOT = ROOT / "web" / "dist"
CLIP_SECONDS = 6
EXIT_ERROR = 1


def generate_clip(
    path: Path, *, seconds: int = CLIP_SECONDS, size: str = "1920x1080"
) -> Path:
    """A 30 fps H.264 clip (1080p by default) with an AAC tone, from ffmpeg's
    lavfi sources."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=30:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


def upload_with_cli(file: Path, api_url: str, token: str, state_dir: Path) -> str:
    """Upload ``file`` with ``vod upload`` (its progress bar goes to the
    terminal) and return the video id it prints."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "client",
            "upload",
            str(file.resolve()),
            "--api",
            api_url,
            "--token",
            token,
            "--state-dir",
            str(state_dir.resolve()),
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"vod upload exited with code {result.returncode}")
    return result.stdout.strip().splitlines()[-1]


def progress_line(record: Mapping[str, Any]) -> str:
    """``PROCESSING 42% (chunks 5/11 done, playable to 1:06)``."""
    status = str(record["status"])
    if status != "PROCESSING":
        return status
    line = f"PROCESSING {int(record.get('progress') or 0)}%"
    notes = []
    chunks = record.get("chunks")
    if chunks:
        notes.append(f"chunks {chunks['done']}/{chunks['total']} done")
    if record.get("playable") and record.get("playableUntil"):
        notes.append(f"playable to {clock(float(record['playableUntil']))}")
    if record.get("retrying"):
        notes.append(f"retrying after {record.get('attempts')} attempts")
    return f"{line} ({', '.join(notes)})" if notes else line


class _Progress:
    """One line per change of the record's status, progress or chunks."""

    def __init__(self) -> None:
        self._last: str | None = None

    def __call__(self, record: Mapping[str, Any]) -> None:
        line = progress_line(record)
        if line != self._last:
            self._last = line
            say(f"  {line}")


def say(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does, through the same cleanup."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    web_root = WEB_ROOT if WEB_ROOT.is_dir() else None
    say(f"Starting the platform from {args.assembly} ...")
    with LocalPlatform(
        args.assembly,
        moto_port=args.moto_port,
        web_port=args.web_port,
        workers=args.workers,
        web_root=web_root,
        run_dir=DEMO_DIR / "run",
    ) as platform:
        say(f"  stack      {platform.assembly.stack_name}")
        say(f"  API        {platform.api_url}")
        say(f"  S3         {platform.s3_url} (moto at {platform.moto_url})")
        say(f"  playback   {platform.playback_url}")
        say(f"  page       {platform.web_url}/")
        say(f"  logs       {platform.run_dir / 'logs'}")
        if web_root is None:
            say(f"  (no web page built in {WEB_ROOT}; the page shows its config only)")
        token = platform.mint_token()
        if not args.no_wait:
            clip = args.file or generate_clip(DEMO_DIR / "clip-1080p.mp4")
            if args.file is None:
                say(f"Generated a {CLIP_SECONDS} s 1080p test clip with audio: {clip}")
            say(f"Uploading {clip} with the CLI (vod upload) ...")
            video_id = upload_with_cli(
                Path(clip), platform.api_url, token, DEMO_DIR / "upload-state"
            )
            say(f"Video {video_id}: waiting for READY ...")
            record = platform.wait_for_video(
                video_id, token, timeout=args.timeout, on_update=_Progress()
            )
            say("Record:")
            say(json.dumps(record, indent=2))
            say(f"Playback URL: {record['playbackUrl']}")
        say(f"For the vod CLI (user {DEMO_USER}), paste:")
        say(f"  export VOD_API_URL={platform.api_url}")
        say(f"  export VOD_TOKEN={token}")
        say(
            f"Serving until Ctrl-C. The page, where the demo user ({DEMO_EMAIL}) "
            + ("uploads and plays:" if args.no_wait else "finds the video uploaded:")
        )
        say(f"  {platform.web_url}/")
        while True:
            time.sleep(3600)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--assembly", type=Path, default=Path("cdk.out"), help="the cloud assembly"
    )
    parser.add_argument("--file", type=Path, help="upload this video instead")
    parser.add_argument(
        "--no-wait", action="store_true", help="only serve the stack, upload nothing"
    )
    parser.add_argument("--moto-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--web-port", type=int, default=8787, help="default: 8787")
    parser.add_argument(
        "--workers", type=int, default=3, help="FFmpeg worker processes (default 3)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds to wait for READY"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.file is not None and not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return EXIT_ERROR
    try:
        with _interrupt_on_sigterm():
            return run(args)
    except KeyboardInterrupt:
        say("Stopped.")
        return 0
    except (
        WiringError,
        TemplateError,
        DockerfileError,
        HandlerError,
        VideoFailed,
        TimeoutError,
        RuntimeError,
        OSError,
        subprocess.CalledProcessError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
