"""The one ffmpeg run per job: decode once, split, scale per rung, encode
every rung and the audio into fMP4 HLS, and take the poster and the sprite
from the same decoded frames.

Keyframes: every rung gets a closed GOP of exactly ``GOP_SECONDS`` (forced at
t = 0, 2, 4, ...; no scene-cut keyframes) from identical frame timing, so the
keyframes, and therefore the 6 s segment boundaries, line up across rungs.
Rate control is capped CRF: constant quality, with each rung's peak held to
its ladder cap by the VBV (-maxrate/-bufsize).

Only options that exist in ffmpeg 5.1 and behave the same in 7.x are used.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from vod.keys import MASTER_PLAYLIST
from vod.ladder import (
    AUDIO_BITRATE,
    AUDIO_CHANNELS,
    AUDIO_NAME,
    AUDIO_SAMPLE_RATE,
    GOP_SECONDS,
    SEGMENT_SECONDS,
    Plan,
    Rung,
    Variant,
    plan_ladder,
)
from worker.errors import Interrupted, Unprocessable, tool_message
from worker.probe import Media
from worker.thumbnails import (
    POSTER_NAME,
    SPRITE_NAME,
    SpriteSheet,
    plan_sprite,
    poster_seconds,
)

#: x264's constant-quality target; 21 is visually clean at every rung, and
#: the caps keep hard scenes within the ladder's rates.
CRF = 21
VARIANT_PLAYLIST = "index.m3u8"
SEGMENT_PATTERN = "seg_%05d.m4s"
_POSTER_QUALITY = 3
_SPRITE_QUALITY = 5
#: Checked this often for a stop request while ffmpeg runs.
_CANCEL_POLL_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class Thumbnails:
    sprite: SpriteSheet
    poster_seconds: float
    poster_width: int
    poster_height: int


@dataclasses.dataclass(frozen=True)
class Encode:
    plan: Plan
    sprite: SpriteSheet
    command: list[str]


def plan_encode(
    source: Path,
    media: Media,
    ladder: tuple[Rung, ...],
    out_dir: Path,
    *,
    preset: str,
) -> Encode:
    """The job's ladder, sprite sheet and ffmpeg run for a probed source;
    the poster is taken at the top rung's size."""
    plan = plan_ladder(media.source, ladder)
    duration = media.source.duration
    sprite = plan_sprite(duration, *media.source.display_size)
    top = plan.variants[0]
    command = ffmpeg_command(
        source,
        plan,
        out_dir,
        preset=preset,
        video_stream=media.video_stream,
        thumbnails=Thumbnails(sprite, poster_seconds(duration), top.width, top.height),
    )
    return Encode(plan, sprite, command)


def ffmpeg_command(
    source: Path,
    plan: Plan,
    out_dir: Path,
    *,
    preset: str,
    video_stream: int = 0,
    thumbnails: Thumbnails | None = None,
) -> list[str]:
    """The full argument list: ``out_dir/master.m3u8``, one folder per rung
    (and ``audio/``) with its playlist, init segment and media segments, and
    with ``thumbnails``, ``poster.jpg`` and ``sprite.jpg``."""
    branches = len(plan.variants) + (2 if thumbnails else 0)
    labels = "".join(f"[s{i}]" for i in range(branches))
    graph = [
        f"[0:v:{video_stream}]fps={plan.frame_rate},format=yuv420p,"
        f"split={branches}{labels}"
    ]
    graph += [
        f"[s{i}]scale={v.width}:{v.height},setsar=1[v{i}]"
        for i, v in enumerate(plan.variants)
    ]
    if thumbnails:
        first = len(plan.variants)
        graph += [
            f"[s{first}]{thumbnails.sprite.filter()}[sprite]",
            # The second trim ends the branch after one frame, so the rest of
            # the video is not converted for a JPEG that is already written.
            f"[s{first + 1}]trim=start={thumbnails.poster_seconds},trim=end_frame=1,"
            f"scale={thumbnails.poster_width}:{thumbnails.poster_height},"
            "setsar=1[poster]",
        ]
    args = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(source),
        "-filter_complex",
        ";".join(graph),
    ]
    for index, variant in enumerate(plan.variants):
        args += [
            "-map",
            f"[v{index}]",
            *video_codec_args(plan, variant, index, preset=preset),
        ]
    if plan.has_audio:
        args += ["-map", "0:a:0", *audio_codec_args()]
    args += hls_muxer_args(out_dir, var_stream_map(plan))
    if thumbnails:
        args += [
            *_image_args("[sprite]", _SPRITE_QUALITY, out_dir / SPRITE_NAME),
            *_image_args("[poster]", _POSTER_QUALITY, out_dir / POSTER_NAME),
        ]
    return args


def video_codec_args(
    plan: Plan, variant: Variant, index: int, *, preset: str
) -> list[str]:
    """x264 settings of output video stream ``index``, the same whether the
    rung is encoded alone or beside the others."""
    stream = f"v:{index}"
    gop = str(plan.gop_frames)
    return [
        f"-c:{stream}",
        "libx264",
        f"-preset:{stream}",
        preset,
        f"-profile:{stream}",
        "high",
        f"-crf:{stream}",
        str(CRF),
        f"-maxrate:{stream}",
        str(variant.max_bitrate),
        f"-bufsize:{stream}",
        str(variant.buffer_size),
        f"-g:{stream}",
        gop,
        f"-keyint_min:{stream}",
        gop,
        f"-sc_threshold:{stream}",
        "0",
        f"-flags:{stream}",
        "+cgop",
        f"-force_key_frames:{stream}",
        f"expr:gte(t,n_forced*{GOP_SECONDS})",
    ]


def audio_codec_args() -> list[str]:
    return [
        "-c:a",
        "aac",
        "-b:a",
        str(AUDIO_BITRATE),
        "-ac",
        str(AUDIO_CHANNELS),
        "-ar",
        str(AUDIO_SAMPLE_RATE),
    ]


def var_stream_map(plan: Plan) -> str:
    """ffmpeg's variant map: each video rung in the audio group when there is
    audio, named after its rung (the name is its folder)."""
    group = f"agroup:{AUDIO_NAME}," if plan.has_audio else ""
    entries = [f"a:0,{group}name:{AUDIO_NAME}"] if plan.has_audio else []
    entries += [f"v:{i},{group}name:{v.name}" for i, v in enumerate(plan.variants)]
    return " ".join(entries)


def hls_muxer_args(out_dir: Path, stream_map: str) -> list[str]:
    return [
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        str(out_dir / "%v" / SEGMENT_PATTERN),
        "-master_pl_name",
        MASTER_PLAYLIST,
        "-var_stream_map",
        stream_map,
        str(out_dir / "%v" / VARIANT_PLAYLIST),
    ]


def _image_args(label: str, quality: int, path: Path) -> list[str]:
    return [
        "-map",
        label,
        "-frames:v",
        "1",
        "-update",
        "1",
        "-q:v",
        str(quality),
        str(path),
    ]


def parse_position(line: str) -> float | None:
    """Seconds encoded so far, from an ``-progress`` line such as
    ``out_time_us=4032000``; None for other lines and ``N/A``."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us":
        return None
    try:
        return max(0.0, int(value) / 1_000_000)
    except ValueError:
        return None


class ProgressThrottle:
    """Turns encode positions into whole percents, at most one per
    ``interval`` seconds and only when the percent grew. 100 is left for the
    READY write, after the uploads."""

    def __init__(self, duration: float, interval: float) -> None:
        self._duration = duration
        self._interval = interval
        self._last_percent = 0
        self._last_time: float | None = None

    def update(self, position: float, now: float) -> int | None:
        percent = min(99, int(position / self._duration * 100))
        if percent <= self._last_percent:
            return None
        if self._last_time is not None and now - self._last_time < self._interval:
            return None
        self._last_percent, self._last_time = percent, now
        return percent


def run_encode(
    args: list[str],
    *,
    source: Path,
    log_path: Path,
    cancel: threading.Event,
    on_position: Callable[[float], None],
) -> None:
    """Run ``args``, passing each progress position (seconds) to
    ``on_position``. Kills ffmpeg and raises Interrupted when ``cancel`` is
    set, and raises Unprocessable when ffmpeg fails on the input. A
    callback's exception also stops ffmpeg before it propagates.

    The last position is no measure of what was decoded: at the end ffmpeg
    reports the furthest stream end, and the sprite's one frame spans the
    whole video."""
    command = [args[0], "-progress", "pipe:1", "-nostats", *args[1:]]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True
        )
    watcher = threading.Thread(
        target=_kill_on_cancel, args=(process, cancel), daemon=True
    )
    watcher.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seconds = parse_position(line)
            if seconds is not None:
                on_position(seconds)
        returncode = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    if returncode == 0:
        return
    if cancel.is_set():
        raise Interrupted("ffmpeg was stopped for shutdown")
    if returncode < 0:
        raise RuntimeError(f"ffmpeg was killed by signal {-returncode}")
    detail = tool_message(log_path.read_text(errors="replace"), source)
    raise Unprocessable(f"the video could not be transcoded ({detail})")


def _kill_on_cancel(process: subprocess.Popen[str], cancel: threading.Event) -> None:
    while process.poll() is None:
        if cancel.wait(_CANCEL_POLL_SECONDS):
            process.kill()
            return
