"""The poster and the scrubbing sprite: one JPEG grid of small frames and a
WebVTT index whose cues point into it (``sprite.jpg#xywh=x,y,w,h``), the
format players such as Video.js and JW Player read for seek previews.

Both are taken from the encoded rungs' keyframes (every 2 s), after the
encode: a keyframe decodes on its own, so a run that made the rungs finds
its thumbnails by decoding a few dozen keyframes of its smallest rung, and
the poster is one keyframe of its largest. A chunk takes the thumbnails of
its own range; the sprite is tiled from all of them at the end.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from worker.errors import Unprocessable, tool_message

POSTER_NAME = "poster.jpg"
SPRITE_NAME = "sprite.jpg"
THUMBNAILS_NAME = "thumbnails.vtt"
#: Long side of one thumbnail; the short side follows the display aspect.
THUMBNAIL_LONG_SIDE = 160
COLUMNS = 10
#: One sheet of at most 10 x 10: ~160 KB, fetched once by the player.
MAX_THUMBNAILS = 100
#: The poster is taken a little into the video, past fades from black, but
#: never later than this.
POSTER_MAX_SECONDS = 10.0
_POSTER_QUALITY = 3
_SPRITE_QUALITY = 5
_TIMEOUT_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class SpriteSheet:
    #: Keyframes from one thumbnail to the next.
    step: int
    count: int
    tile_width: int
    tile_height: int
    #: Seconds between keyframes.
    gop_seconds: Fraction

    @property
    def columns(self) -> int:
        return min(COLUMNS, self.count)

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.columns)

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * self.tile_height

    def start(self, index: int) -> float:
        """When thumbnail ``index`` (keyframe ``index * step``) is shown."""
        return float(index * self.step * self.gop_seconds)

    def keyframes(self, first: int, count: int) -> list[int]:
        """The thumbnails among keyframes ``first`` to ``first + count - 1``."""
        start = math.ceil(first / self.step)
        return [
            index
            for index in range(start, self.count)
            if index * self.step < first + count
        ]


def plan_sprite(
    duration: float, width: int, height: int, *, gop_frames: int, frame_rate: Fraction
) -> SpriteSheet:
    """One thumbnail every ``step`` keyframes, at most MAX_THUMBNAILS over
    the video, the first at its first frame."""
    gop_seconds = Fraction(gop_frames) / frame_rate
    keyframes = max(1, math.ceil(Fraction(duration) / gop_seconds))
    step = max(1, math.ceil(keyframes / MAX_THUMBNAILS))
    scale = THUMBNAIL_LONG_SIDE / max(width, height)
    return SpriteSheet(
        step=step,
        count=math.ceil(keyframes / step),
        tile_width=_even(width * scale),
        tile_height=_even(height * scale),
        gop_seconds=gop_seconds,
    )


def poster_keyframe(duration: float, gop_seconds: Fraction) -> int:
    """The keyframe at or before a quarter in (capped at 10 s)."""
    seconds = min(duration / 4, POSTER_MAX_SECONDS) if duration >= 1 else 0.0
    return math.floor(Fraction(seconds) / gop_seconds)


def webvtt(sheet: SpriteSheet, duration: float, image: str = SPRITE_NAME) -> str:
    """Cues covering [0, duration); the last thumbnail holds to the end."""
    lines = ["WEBVTT", ""]
    for index in range(sheet.count):
        start = sheet.start(index)
        end = duration if index == sheet.count - 1 else sheet.start(index + 1)
        x = (index % sheet.columns) * sheet.tile_width
        y = (index // sheet.columns) * sheet.tile_height
        lines += [
            f"{_timestamp(start)} --> {_timestamp(max(start, end))}",
            f"{image}#xywh={x},{y},{sheet.tile_width},{sheet.tile_height}",
            "",
        ]
    return "\n".join(lines)


def join_rendition(init: Path, segments: Sequence[Path], joined: Path) -> Path:
    """One fragmented MP4 of a rendition's init and media segments."""
    with joined.open("wb") as out:
        for part in (init, *segments):
            out.write(part.read_bytes())
    return joined


def extract_keyframes(
    rendition: Path,
    picks: Sequence[int],
    out_dir: Path,
    *,
    width: int,
    height: int,
    quality: int = _SPRITE_QUALITY,
) -> list[Path]:
    """Keyframes number ``picks`` (counted from the rendition's first) as
    JPEGs of ``width`` x ``height``, in the order of ``picks``. Only
    keyframes are decoded."""
    if not picks:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = "+".join(f"eq(n\\,{pick})" for pick in sorted(picks))
    pattern = out_dir / "key_%05d.jpg"
    _ffmpeg(
        [
            "-skip_frame",
            "nokey",
            "-i",
            str(rendition),
            "-vf",
            f"select='{chosen}',scale={width}:{height},setsar=1",
            "-fps_mode",
            "passthrough",
            "-q:v",
            str(quality),
            str(pattern),
        ],
        rendition,
    )
    made = sorted(out_dir.glob("key_*.jpg"))
    if len(made) != len(picks):
        raise Unprocessable(
            f"only {len(made)} of {len(picks)} thumbnail frames could be decoded"
        )
    return made


def extract_poster(
    rendition: Path, keyframe: int, path: Path, *, width: int, height: int
) -> Path:
    scratch = path.parent / "poster-frames"
    (frame,) = extract_keyframes(
        rendition,
        [keyframe],
        scratch,
        width=width,
        height=height,
        quality=_POSTER_QUALITY,
    )
    frame.replace(path)
    return path


def tile(thumbnails: Sequence[Path], sheet: SpriteSheet, path: Path) -> Path:
    """The sprite sheet from the thumbnails, in order."""
    if len(thumbnails) != sheet.count:
        raise ValueError(f"{len(thumbnails)} thumbnails for a sheet of {sheet.count}")
    folder = path.parent / "sprite-tiles"
    folder.mkdir(parents=True, exist_ok=True)
    for index, thumbnail in enumerate(thumbnails):
        (folder / f"tile_{index:05d}.jpg").write_bytes(thumbnail.read_bytes())
    _ffmpeg(
        [
            "-start_number",
            "0",
            "-i",
            str(folder / "tile_%05d.jpg"),
            "-vf",
            f"tile={sheet.columns}x{sheet.rows}",
            "-frames:v",
            "1",
            "-q:v",
            str(_SPRITE_QUALITY),
            str(path),
        ],
        folder,
    )
    return path


def _ffmpeg(args: list[str], subject: Path) -> None:
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        detail = tool_message(result.stderr, subject)
        raise Unprocessable(f"the thumbnails could not be made ({detail})")


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
