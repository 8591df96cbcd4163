"""Finishing ffmpeg's master playlist.

ffmpeg writes BANDWIDTH (from the rate caps), RESOLUTION and usually CODECS,
but never FRAME-RATE or AVERAGE-BANDWIDTH, which Apple's HLS authoring spec
requires. We measure the produced segments and add what is missing, keeping
what ffmpeg wrote, except a BANDWIDTH below the measured peak (the VBV lets a
segment overshoot its cap a little), which the spec forbids.

ffmpeg 5.1 also lists the audio group's playlist as an audio-only variant;
that entry is dropped, so a player on a weak link picks the smallest video
rung rather than a black screen, and reaches the audio through each
variant's AUDIO group.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

#: AAC-LC, the profile of ffmpeg's native AAC encoder.
AAC_LC_CODEC = "mp4a.40.2"
_STREAM_INF = "#EXT-X-STREAM-INF:"
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_MAP_URI = re.compile(r'#EXT-X-MAP:.*?URI="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class MediaPlaylist:
    init: str | None
    segments: tuple[tuple[str, float], ...]

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.segments)

    @classmethod
    def parse(cls, text: str) -> MediaPlaylist:
        init = None
        segments = []
        duration: float | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if match := _MAP_URI.match(line):
                init = match.group(1)
            elif line.startswith("#EXTINF:"):
                duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
            elif line and not line.startswith("#") and duration is not None:
                segments.append((line, duration))
                duration = None
        return cls(init=init, segments=tuple(segments))


@dataclasses.dataclass(frozen=True)
class Rates:
    """A playlist's measured rates in bit/s: over the whole, and its peak
    segment (the HLS spec's definitions of AVERAGE-BANDWIDTH and BANDWIDTH)."""

    average: int
    peak: int

    def __add__(self, other: Rates) -> Rates:
        return Rates(self.average + other.average, self.peak + other.peak)


def measure(playlist: MediaPlaylist, folder: Path) -> Rates:
    """Rates of ``playlist``'s segments, which are files under ``folder``."""
    sizes = [(folder / uri).stat().st_size for uri, _ in playlist.segments]
    seconds = playlist.duration
    if seconds <= 0:
        raise ValueError(f"the playlist in {folder} lists no media time")
    return Rates(
        average=round(sum(sizes) * 8 / seconds),
        peak=max(
            round(size * 8 / duration)
            for size, (_, duration) in zip(sizes, playlist.segments, strict=True)
            if duration > 0
        ),
    )


def avc_codec(init_segment: bytes) -> str | None:
    """The RFC 6381 ``avc1.PPCCLL`` string from an init segment's avcC box
    (profile, constraint flags, level), or None when there is none."""
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        return None
    profile, constraints, level = init_segment[at + 5 : at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


@dataclasses.dataclass(frozen=True)
class VariantFacts:
    rates: Rates
    width: int
    height: int
    codecs: str
    frame_rate: float

    def attributes(self) -> dict[str, str]:
        return {
            "BANDWIDTH": str(self.rates.peak),
            "AVERAGE-BANDWIDTH": str(self.rates.average),
            "CODECS": f'"{self.codecs}"',
            "RESOLUTION": f"{self.width}x{self.height}",
            "FRAME-RATE": f"{self.frame_rate:.3f}",
        }


def finish_master(text: str, facts: Mapping[str, VariantFacts]) -> str:
    """``text`` with each variant (keyed by its URI) completed from ``facts``;
    variants without facts are dropped. Raises ValueError when a variant in
    ``facts`` is not in the playlist."""
    lines = text.splitlines()
    out: list[str] = []
    seen: set[str] = set()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith(_STREAM_INF):
            out.append(line)
            index += 1
            continue
        uri = lines[index + 1].strip() if index + 1 < len(lines) else ""
        index += 2
        if uri not in facts:
            continue
        seen.add(uri)
        attributes = parse_attributes(line[len(_STREAM_INF) :])
        measured = facts[uri].attributes()
        for name, value in measured.items():
            attributes.setdefault(name, value)
        attributes["BANDWIDTH"] = str(
            max(int(attributes["BANDWIDTH"]), int(measured["BANDWIDTH"]))
        )
        out += [_STREAM_INF + format_attributes(attributes), uri]
    missing = set(facts) - seen
    if missing:
        raise ValueError(f"master playlist lacks variants {sorted(missing)}")
    return "\n".join(out).rstrip("\n") + "\n"


def parse_attributes(text: str) -> dict[str, str]:
    """An attribute list, values kept as written (quoted strings with quotes)."""
    return {match.group(1): match.group(2) for match in _ATTRIBUTE.finditer(text)}


def format_attributes(attributes: Mapping[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in attributes.items())
