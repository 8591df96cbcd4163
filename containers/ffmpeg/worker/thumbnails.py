"""The poster and the scrubbing sprite: one JPEG grid of small frames and a
WebVTT index whose cues point into it (``sprite.jpg#xywh=x,y,w,h``), the
format players such as Video.js and JW Player read for seek previews.

Both come out of the encode's own filter graph, so the source is decoded once.
"""

from __future__ import annotations

import dataclasses
import math

POSTER_NAME = "poster.jpg"
SPRITE_NAME = "sprite.jpg"
THUMBNAILS_NAME = "thumbnails.vtt"
#: Long side of one thumbnail; the short side follows the display aspect.
THUMBNAIL_LONG_SIDE = 160
COLUMNS = 10
#: One sheet of at most 10 x 10: ~160 KB, fetched once by the player.
MAX_THUMBNAILS = 100
MIN_INTERVAL_SECONDS = 2
#: The poster is taken a little into the video, past fades from black, but
#: never later than this.
POSTER_MAX_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class SpriteSheet:
    interval: int
    count: int
    tile_width: int
    tile_height: int

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

    def filter(self) -> str:
        return (
            f"fps=1/{self.interval}:eof_action=pass,"
            f"scale={self.tile_width}:{self.tile_height},"
            f"tile={self.columns}x{self.rows}"
        )


def plan_sprite(duration: float, width: int, height: int) -> SpriteSheet:
    interval = max(MIN_INTERVAL_SECONDS, math.ceil(duration / MAX_THUMBNAILS))
    # One thumbnail per interval begun: the fps filter's slots at 0, i, 2i...
    # below the duration, the last one passed through at the end of input.
    count = max(1, math.ceil(duration / interval))
    scale = THUMBNAIL_LONG_SIDE / max(width, height)
    return SpriteSheet(
        interval=interval,
        count=count,
        tile_width=_even(width * scale),
        tile_height=_even(height * scale),
    )


def webvtt(sheet: SpriteSheet, duration: float, image: str = SPRITE_NAME) -> str:
    """Cues covering [0, duration); the last thumbnail holds to the end."""
    lines = ["WEBVTT", ""]
    for index in range(sheet.count):
        start = index * sheet.interval
        end = duration if index == sheet.count - 1 else (index + 1) * sheet.interval
        x = (index % sheet.columns) * sheet.tile_width
        y = (index // sheet.columns) * sheet.tile_height
        lines += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{image}#xywh={x},{y},{sheet.tile_width},{sheet.tile_height}",
            "",
        ]
    return "\n".join(lines)


def poster_seconds(duration: float) -> float:
    """A quarter in, capped; 0 for clips under a second, which may hold a
    single frame."""
    if duration < 1:
        return 0.0
    return round(min(duration / 4, POSTER_MAX_SECONDS), 3)


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
