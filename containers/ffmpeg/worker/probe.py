"""What the source is: ffprobe's JSON, read into the ladder's ``Source``.

Reading is a pure function of the JSON so that every oddity (rotation, no
audio, cover art, unknown rates) is tested without a file."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from vod.ladder import DynamicRange, Source
from vod.languages import bcp47
from worker.errors import Unprocessable, tool_message

_PROBE_TIMEOUT_SECONDS = 120


#: ffprobe's ``color_transfer`` names of the HDR transfers.
HDR_TRANSFERS = {
    "smpte2084": DynamicRange.PQ,
    "arib-std-b67": DynamicRange.HLG,
}
_BIT_DEPTH = re.compile(r"p(\d{1,2})(le|be)?$")

#: Containers with an index that ffmpeg seeks in over HTTP range requests,
#: so a chunk reads only its range of the source.
SEEKABLE_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})


@dataclasses.dataclass(frozen=True)
class Media:
    source: Source
    #: Position of the chosen stream among the file's video streams, for
    #: ffmpeg's ``0:v:N`` (cover art is a video stream too).
    video_stream: int
    #: ffprobe's format names, e.g. ``mov,mp4,m4a,3gp,3g2,mj2``.
    format_name: str = ""
    #: A PQ source's HDR10 static metadata as x265 takes it (``hdr10_params``).
    hdr10: str = ""

    @property
    def seekable(self) -> bool:
        return bool(SEEKABLE_FORMATS & set(self.format_name.split(",")))


def run_ffprobe(path: Path | str) -> Mapping[str, Any]:
    """ffprobe's streams and format of a file or URL; Unprocessable when it
    cannot read it."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            # The first few frames (the first packets may be audio): HEVC
            # carries HDR10 metadata in its SEI, which ffmpeg 5.1 shows only
            # on frames.
            "-read_intervals",
            "%+#4",
            "-show_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=_PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode < 0:
        raise RuntimeError(f"ffprobe was killed by signal {-result.returncode}")
    if result.returncode != 0:
        detail = tool_message(result.stderr, path) or f"exit {result.returncode}"
        raise Unprocessable(f"the file is not a video that can be read ({detail})")
    parsed: Mapping[str, Any] = json.loads(result.stdout)
    return parsed


def describe(probe: Mapping[str, Any]) -> Media:
    """The source as the ladder sees it; Unprocessable for what no ladder fits."""
    streams = probe.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"]
    playable = [
        (index, s)
        for index, s in enumerate(videos)
        if not s.get("disposition", {}).get("attached_pic")
    ]
    if not playable:
        raise Unprocessable("the file has no video stream")
    video_stream, video = playable[0]
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise Unprocessable("the video stream has no picture size")
    fmt = probe.get("format", {})
    duration = _number(video.get("duration")) or _number(fmt.get("duration"))
    if duration is None or duration <= 0:
        raise Unprocessable("the video has no duration")
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    has_audio = bool(audios)
    dynamic_range = HDR_TRANSFERS.get(
        str(video.get("color_transfer")), DynamicRange.SDR
    )
    return Media(
        source=Source(
            width=width,
            height=height,
            duration=duration,
            frame_rate=_rate(video.get("r_frame_rate")),
            average_frame_rate=_rate(video.get("avg_frame_rate")),
            has_audio=has_audio,
            bitrate=_video_bitrate(video, fmt, streams),
            rotation=_rotation(video),
            sample_aspect_ratio=_ratio(video.get("sample_aspect_ratio")),
            audio_languages=tuple(
                bcp47((audio.get("tags") or {}).get("language")) for audio in audios
            ),
            dynamic_range=dynamic_range,
            bit_depth=_bit_depth(video),
            wide_gamut=dynamic_range is DynamicRange.SDR
            and video.get("color_primaries") == "bt2020",
        ),
        video_stream=video_stream,
        format_name=str(fmt.get("format_name", "")),
        hdr10=hdr10_params(
            [
                *video.get("side_data_list", []),
                *(
                    side
                    for frame in probe.get("frames", [])
                    if frame.get("stream_index") == video.get("index")
                    for side in frame.get("side_data_list", [])
                ),
            ]
        ),
    )


def hdr10_params(side_data: list[Mapping[str, Any]]) -> str:
    """x265's ``master-display`` (SMPTE ST 2086: primaries and white point
    in 0.00002, luminance in 0.0001 cd/m2) and ``max-cll`` (CTA-861.3) from
    ffprobe's side data, so that the HDR ladder keeps what a PQ source says
    of its mastering display and light levels; '' when it says nothing."""
    params = []
    kinds = {side.get("side_data_type"): side for side in side_data}
    display = kinds.get("Mastering display metadata", {})
    points = {
        name: [round(_rate(display.get(f"{key}_{axis}")) * 50000) for axis in "xy"]
        for name, key in (
            ("G", "green"),
            ("B", "blue"),
            ("R", "red"),
            ("WP", "white_point"),
        )
    }
    peak, low = (
        round(_rate(display.get(f"{key}_luminance")) * 10000) for key in ("max", "min")
    )
    if peak and all(all(xy) for xy in points.values()):
        params.append(
            "master-display="
            + "".join(f"{name}({x},{y})" for name, (x, y) in points.items())
            + f"L({peak},{low})"
        )
    light = kinds.get("Content light level metadata", {})
    if light.get("max_content"):
        params.append(
            f"max-cll={int(light['max_content'])},{int(light.get('max_average') or 0)}"
        )
    return ":".join(params)


def _video_bitrate(
    video: Mapping[str, Any], fmt: Mapping[str, Any], streams: list[Any]
) -> int | None:
    """The video stream's rate; containers that only know the total (Matroska,
    WebM) give the total less the audio streams' declared rates."""
    own = _number(video.get("bit_rate"))
    if own:
        return int(own)
    total = _number(fmt.get("bit_rate"))
    if not total:
        return None
    audio = sum(
        _number(s.get("bit_rate")) or 0
        for s in streams
        if s.get("codec_type") == "audio"
    )
    return int(total - audio) if total > audio else None


def _bit_depth(video: Mapping[str, Any]) -> int:
    """The decoded picture's bits per sample: the codec's own count, else
    what the pixel format says (``yuv420p10le`` is 10), else 8."""
    raw = _number(video.get("bits_per_raw_sample"))
    if raw:
        return int(raw)
    match = _BIT_DEPTH.search(str(video.get("pix_fmt", "")))
    return int(match.group(1)) if match else 8


def _rotation(video: Mapping[str, Any]) -> int:
    for side_data in video.get("side_data_list", []):
        if (
            side_data.get("side_data_type") == "Display Matrix"
            and "rotation" in side_data
        ):
            return round(float(side_data["rotation"]))
    tag = video.get("tags", {}).get("rotate")
    return round(float(tag)) if tag else 0


def _rate(raw: object) -> Fraction:
    """``30000/1001`` as a Fraction; 0 for absent or ``0/0``."""
    if not isinstance(raw, str) or "/" not in raw:
        return Fraction(0)
    num, _, den = raw.partition("/")
    try:
        return Fraction(int(num), int(den)) if int(den) else Fraction(0)
    except ValueError:
        return Fraction(0)


def _ratio(raw: object) -> Fraction:
    """A sample aspect ratio such as ``4:3``; square pixels when unknown."""
    if not isinstance(raw, str) or ":" not in raw:
        return Fraction(1)
    num, _, den = raw.partition(":")
    try:
        value = Fraction(int(num), int(den))
    except (ValueError, ZeroDivisionError):
        return Fraction(1)
    return value if value > 0 else Fraction(1)


def _number(raw: object) -> float | None:
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return None
    return None
