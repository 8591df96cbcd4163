"""The adaptive-bitrate ladder: which renditions a source gets, at what size,
rate and frame rate. Pure functions, shared by the FFmpeg worker and the
MediaConvert path so that both produce the same rungs.

Default rungs (name: short side, bitrate cap). The caps are peak rates for a
capped-CRF H.264 encode at up to 30 fps, as common web ladders use them; the
encoder spends less wherever the content allows:

    1080p: 1080 px, 5000 kbit/s
    720p:   720 px, 3000 kbit/s
    540p:   540 px, 2000 kbit/s
    432p:   432 px, 1200 kbit/s
    360p:   360 px,  800 kbit/s

A rung names the short side so that portrait video gets the same quality
steps as landscape. ``Env.LADDER`` replaces the rungs with a JSON list such as
``[{"name": "720p", "shortSide": 720, "maxKbps": 3000}]``.

A rung's cap is lowered to the source's bitrate, and a rung whose cap is not
``LADDER_STEP`` times the cap of the rung kept below it is dropped: it would
cost storage and encode time and give a player no bandwidth step.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from fractions import Fraction

#: Every segment is 6 s and every rung has a keyframe each 2 s, at the same
#: instants, so a player can switch rungs at any segment boundary.
SEGMENT_SECONDS = 6
GOP_SECONDS = 2
#: One AAC-LC stereo rendition group shared by all video rungs.
AUDIO_BITRATE = 128_000
AUDIO_CHANNELS = 2
AUDIO_SAMPLE_RATE = 48_000
#: A player's buffer model: twice the cap, i.e. two seconds at peak rate.
BUFFER_TO_RATE = 2
#: Above this, the frame rate is halved: high-rate sources (slow-motion phone
#: clips at 120/240 fps) would cost far more bits for motion no screen shows.
MAX_FRAME_RATE = 60
#: The rate used when a source does not declare one that can be trusted.
FALLBACK_FRAME_RATE = Fraction(30)
#: Broadcast rates that a variable-rate source is snapped to when its average
#: is within 1 % of one; any other average is rounded to a whole rate.
STANDARD_FRAME_RATES = tuple(
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (48, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
    )
)
_RATE_TOLERANCE = Fraction(1, 100)
#: A rung is kept only if its cap is at least this many times the cap of the
#: next rung kept below it. The default ladder's steps are 1.5x to 1.67x, so
#: a source above every cap keeps all its rungs.
LADDER_STEP = Fraction(3, 2)
#: Names become folder names in the output prefix; "audio", "audio2", ...
#: are the audio renditions'.
AUDIO_NAME = "audio"
_RUNG_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_AUDIO_FOLDER = re.compile(rf"{AUDIO_NAME}\d*")


def audio_folder(track: int) -> str:
    """The folder of audio track ``track``'s rendition (counted from 0):
    ``audio``, then ``audio2``, ``audio3``..."""
    return AUDIO_NAME if track == 0 else f"{AUDIO_NAME}{track + 1}"


class DynamicRange(enum.StrEnum):
    """A picture's dynamic range, named as HLS's ``VIDEO-RANGE`` names it."""

    SDR = "SDR"
    #: SMPTE ST 2084, the perceptual quantizer (HDR10, Dolby Vision).
    PQ = "PQ"
    #: ARIB STD-B67, hybrid log-gamma (phones, broadcast).
    HLG = "HLG"


#: An HDR rung's folder name: the SDR rung's with this suffix.
HDR_SUFFIX = "-hdr"
#: The HDR ladder (the ``hdrLadder`` knob) repeats at most this many of the
#: SDR rungs, from the top: HEVC costs several times H.264's encode time,
#: and a screen that shows HDR is rarely on a link that needs the lowest
#: rungs, which the SDR ladder still serves.
HDR_MAX_RUNGS = 3


@dataclasses.dataclass(frozen=True)
class Rung:
    name: str
    short_side: int
    max_kbps: int


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung("1080p", 1080, 5000),
    Rung("720p", 720, 3000),
    Rung("540p", 540, 2000),
    Rung("432p", 432, 1200),
    Rung("360p", 360, 800),
)


def parse_ladder(raw: str) -> tuple[Rung, ...]:
    """Rungs from ``Env.LADDER`` JSON, largest first; raises ValueError naming
    the bad entry and the expected shape."""
    shape = '[{"name": "720p", "shortSide": 720, "maxKbps": 3000}, ...]'
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"ladder is not JSON ({error}); expected {shape}") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"ladder must be a non-empty list; expected {shape}")
    rungs = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {
            "name",
            "shortSide",
            "maxKbps",
        }:
            raise ValueError(f"bad ladder entry {entry!r}; expected {shape}")
        name, short_side, max_kbps = (
            entry["name"],
            entry["shortSide"],
            entry["maxKbps"],
        )
        if (
            not isinstance(name, str)
            or not _RUNG_NAME.match(name)
            or _AUDIO_FOLDER.fullmatch(name)
            or name.endswith(HDR_SUFFIX)
        ):
            raise ValueError(
                f"bad rung name {name!r}: use 1-32 letters, digits, '-' or '_' "
                f"(not {AUDIO_NAME!r} nor {AUDIO_NAME!r} and digits, not ending "
                f"{HDR_SUFFIX!r})"
            )
        if not _positive_int(short_side) or short_side % 2:
            raise ValueError(f"rung {name}: shortSide must be a positive even integer")
        if not _positive_int(max_kbps):
            raise ValueError(f"rung {name}: maxKbps must be a positive integer")
        rungs.append(Rung(name, short_side, max_kbps))
    if len({r.name for r in rungs}) != len(rungs):
        raise ValueError("ladder rung names must be unique")
    if len({r.short_side for r in rungs}) != len(rungs):
        raise ValueError("ladder rungs must have distinct shortSide values")
    return tuple(sorted(rungs, key=lambda r: r.short_side, reverse=True))


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclasses.dataclass(frozen=True)
class Source:
    """What the ladder needs to know about a source's video and audio."""

    width: int
    height: int
    duration: float
    frame_rate: Fraction
    average_frame_rate: Fraction
    has_audio: bool
    bitrate: int | None = None
    #: Degrees of the display matrix (or legacy ``rotate`` tag).
    rotation: int = 0
    sample_aspect_ratio: Fraction = Fraction(1)
    #: Every audio track's language (BCP 47, ``und`` when untagged), in order.
    audio_languages: tuple[str, ...] = ()
    #: From the video's transfer characteristic: PQ or HLG is HDR.
    dynamic_range: DynamicRange = DynamicRange.SDR
    #: Bits per sample of the decoded picture (10 for HDR from a phone).
    bit_depth: int = 8
    #: SDR in BT.2020 primaries (wide colour gamut), not BT.709's.
    wide_gamut: bool = False

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: non-square pixels stretched, quarter
        turns applied (a phone's portrait clip is stored landscape)."""
        width = round(self.width * self.sample_aspect_ratio)
        height = self.height
        if abs(self.rotation) % 180 == 90:
            return height, width
        return width, height


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    width: int
    height: int
    max_bitrate: int
    #: SDR: 8-bit BT.709 H.264. PQ or HLG: a 10-bit HEVC rung of the HDR
    #: ladder, in the source's transfer.
    dynamic_range: DynamicRange = DynamicRange.SDR

    @property
    def buffer_size(self) -> int:
        return self.max_bitrate * BUFFER_TO_RATE

    @property
    def is_hdr(self) -> bool:
        return self.dynamic_range is not DynamicRange.SDR


@dataclasses.dataclass(frozen=True)
class Plan:
    variants: tuple[Variant, ...]
    frame_rate: Fraction
    has_audio: bool

    @property
    def gop_frames(self) -> int:
        return max(1, round(self.frame_rate * GOP_SECONDS))


def plan_ladder(source: Source, ladder: tuple[Rung, ...] = DEFAULT_LADDER) -> Plan:
    """The renditions for ``source``: every rung whose short side fits in the
    source's display short side (never upscaling), or, for a source smaller
    than every rung, one rendition at its own (even) size. Rungs whose caps,
    lowered to the source's bitrate, step up by less than ``LADDER_STEP``
    are then dropped (``prune``)."""
    width, height = source.display_size
    short, long = min(width, height), max(width, height)
    rungs = [r for r in ladder if r.short_side <= short]
    if not rungs:
        smallest = min(ladder, key=lambda r: r.short_side)
        own = _even_floor(short)
        rungs = [Rung(f"{own}p", own, smallest.max_kbps)]
    variants = []
    for rung in sorted(rungs, key=lambda r: r.short_side, reverse=True):
        rung_long = min(_even_round(rung.short_side * long / short), _even_floor(long))
        size = (rung_long, rung.short_side)
        rung_width, rung_height = size if width >= height else size[::-1]
        cap = rung.max_kbps * 1000
        if source.bitrate:
            cap = min(cap, source.bitrate)
        variants.append(Variant(rung.name, rung_width, rung_height, cap))
    return Plan(
        variants=prune(variants),
        frame_rate=output_frame_rate(source.frame_rate, source.average_frame_rate),
        has_audio=source.has_audio,
    )


def hdr_variants(
    variants: tuple[Variant, ...], dynamic_range: DynamicRange
) -> tuple[Variant, ...]:
    """The HDR ladder beside ``variants`` (the SDR ladder) of a source in
    ``dynamic_range``: the top HDR_MAX_RUNGS rungs again, at the same sizes
    and caps; none for an SDR source."""
    if dynamic_range is DynamicRange.SDR:
        return ()
    return tuple(
        dataclasses.replace(v, name=v.name + HDR_SUFFIX, dynamic_range=dynamic_range)
        for v in variants[:HDR_MAX_RUNGS]
    )


def prune(variants: list[Variant]) -> tuple[Variant, ...]:
    """``variants`` (largest first) without those that are no bandwidth step:
    from the lowest, which is always kept, up, a rung stays only when its cap
    is at least ``LADDER_STEP`` times the last kept one's."""
    kept: list[Variant] = []
    for variant in reversed(variants):
        if not kept or variant.max_bitrate >= kept[-1].max_bitrate * LADDER_STEP:
            kept.append(variant)
    return tuple(reversed(kept))


def output_frame_rate(declared: Fraction, average: Fraction) -> Fraction:
    """A constant output rate. A constant-rate source keeps its declared rate;
    a variable-rate one (declared and average rates disagree) gets its
    average, snapped to a broadcast rate. Rates above 60 are halved until
    they are not."""
    if declared > 0 and (average <= 0 or _close(declared, average)):
        rate = declared
    elif average > 0:
        nearest = min(STANDARD_FRAME_RATES, key=lambda s: abs(average - s))
        rate = nearest if _close(average, nearest) else Fraction(max(1, round(average)))
    else:
        rate = FALLBACK_FRAME_RATE
    while rate > MAX_FRAME_RATE:
        rate /= 2
    return rate


def _close(a: Fraction, b: Fraction) -> bool:
    return abs(a - b) <= b * _RATE_TOLERANCE


def _even_floor(value: float) -> int:
    return max(2, math.floor(value / 2) * 2)


def _even_round(value: float) -> int:
    return max(2, round(value / 2) * 2)
