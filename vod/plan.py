"""The transcode plan of one video, as the planning worker stores it on the
record: the ladder's variants, the output frame timing and, for a long
source, the chunks that workers encode at once.

Everything is counted in output frames, so that a chunk encoded alone ends
exactly where the next begins. A GOP is ``gop_frames`` (2 s) and a segment
three GOPs (6 s; 6.006 s at 29.97 fps). Chunks start on segment boundaries:
the first chunk is one segment long, so that the start of the video is
playable first, and the others are ``chunk_seconds`` long (the last takes
what is left). Every frame of the one-run encode is encoded by exactly one
chunk, with the same keyframes and segment boundaries.

Everything here is pure and shared: the worker plans and encodes with it,
the dead-letter consumer and the API describe chunks with it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from vod.ladder import GOP_SECONDS, SEGMENT_SECONDS, DynamicRange, Plan, Variant
from vod.languages import UNDETERMINED
from vod.loudness import LoudnessTarget

GOPS_PER_SEGMENT = SEGMENT_SECONDS // GOP_SECONDS
#: The first chunk: one segment, the first thing a viewer needs.
FIRST_CHUNK_SEGMENTS = 1
#: At most this many chunks per video; a longer source gets longer chunks,
#: which keeps the record's task map well inside DynamoDB's item size.
MAX_CHUNKS = 500


class Mode(enum.StrEnum):
    #: One ffmpeg run encodes every rung and the audio.
    SINGLE = "single"
    #: Chunk jobs encode the rungs, an audio job the audio.
    CHUNKED = "chunked"


def gop_frames(frame_rate: Fraction) -> int:
    return max(1, round(frame_rate * GOP_SECONDS))


def segment_frames(frame_rate: Fraction) -> int:
    return gop_frames(frame_rate) * GOPS_PER_SEGMENT


def segmenter_seconds(frame_rate: Fraction, frames: int) -> float:
    """The ``-hls_time`` that makes ffmpeg's HLS muxer cut every ``frames``
    frames (a multiple of the GOP). It cuts at the first keyframe ``k *
    hls_time`` or more after the start of its run; 1/256 of a frame short of
    ``frames`` keeps the k-th target past the keyframe before it for 256
    cuts per frame of the GOP (over a thousand), more than any run makes."""
    return float((frames - Fraction(1, 256)) / frame_rate)


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    #: The global number of its first media segment.
    first_segment: int
    #: Index of its first output frame, from the video's first frame.
    first_frame: int
    #: How many frames it encodes; None for the last chunk, which runs to the
    #: end of the source.
    frames: int | None
    #: Its range in the video, in seconds (the source's end for the last).
    start_seconds: float
    end_seconds: float

    @property
    def seconds(self) -> float:
        return self.end_seconds - self.start_seconds

    def describe(self, total: int) -> str:
        return (
            f"chunk {self.index + 1} of {total} "
            f"({clock(self.start_seconds)}-{clock(self.end_seconds)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment": self.first_segment,
            "firstFrame": self.first_frame,
            "frames": self.frames,
            "start": self.start_seconds,
            "end": self.end_seconds,
        }

    @classmethod
    def from_dict(cls, index: int, raw: Mapping[str, Any]) -> Chunk:
        frames = raw.get("frames")
        return cls(
            index=index,
            first_segment=int(raw["segment"]),
            first_frame=int(raw["firstFrame"]),
            frames=None if frames is None else int(frames),
            start_seconds=float(raw["start"]),
            end_seconds=float(raw["end"]),
        )


def chunk_segments(duration: float, chunk_seconds: int) -> int:
    """Segments per chunk: ``chunk_seconds`` worth, or more for a source that
    would need over MAX_CHUNKS chunks."""
    if chunk_seconds <= 0 or chunk_seconds % SEGMENT_SECONDS:
        raise ValueError(
            f"chunk length must be a positive multiple of {SEGMENT_SECONDS} s, "
            f"got {chunk_seconds}"
        )
    wanted = chunk_seconds // SEGMENT_SECONDS
    needed = math.ceil(duration / SEGMENT_SECONDS / MAX_CHUNKS)
    return max(1, wanted, needed)


def plan_chunks(
    duration: float, frame_rate: Fraction, chunk_seconds: int
) -> tuple[Chunk, ...]:
    """The chunks of a source of ``duration`` seconds at ``frame_rate``. A
    source that fits in one chunk is one chunk: the one-run path. Frames are
    counted from the start of the file, as ffmpeg's constant-rate output
    counts them (a video that starts late begins with copies of its first
    frame)."""
    per_chunk = chunk_segments(duration, chunk_seconds)
    segment = segment_frames(frame_rate)
    total_frames = max(1, math.ceil(duration * frame_rate))
    total_segments = math.ceil(total_frames / segment)
    if total_segments <= per_chunk:
        starts = [0]
    else:
        starts = [0, FIRST_CHUNK_SEGMENTS]
        while starts[-1] + per_chunk < total_segments:
            starts.append(starts[-1] + per_chunk)

    def seconds(frame: int) -> float:
        return float(Fraction(frame) / frame_rate)

    chunks = []
    for index, first in enumerate(starts):
        last = index == len(starts) - 1
        first_frame = first * segment
        frames = None if last else (starts[index + 1] - first) * segment
        chunks.append(
            Chunk(
                index=index,
                first_segment=first,
                first_frame=first_frame,
                frames=frames,
                start_seconds=seconds(first_frame),
                end_seconds=duration
                if frames is None
                else seconds(first_frame + frames),
            )
        )
    return tuple(chunks)


@dataclasses.dataclass(frozen=True)
class TranscodePlan:
    """What every task of a video encodes with, fixed once by the planner so
    that a deploy during the transcode cannot mix two ladders or presets."""

    mode: Mode
    duration: float
    display_width: int
    display_height: int
    frame_rate: Fraction
    variants: tuple[Variant, ...]
    has_audio: bool
    video_stream: int
    preset: str
    #: Whether workers may read a chunk's range from the source over HTTP
    #: (an indexed container); otherwise each downloads the source.
    seekable: bool
    chunks: tuple[Chunk, ...]
    #: Source frame rate (the average when variable), for accurate seeking.
    source_frame_rate: Fraction = Fraction(0)
    #: With audio: the language (BCP 47) of each source audio track that
    #: becomes a rendition, in order (track N is ffmpeg's ``0:a:N``).
    audio_languages: tuple[str, ...] = (UNDETERMINED,)
    #: What every audio rendition is normalized to; None leaves it as it is.
    loudness: LoudnessTarget | None = None
    #: The source's dynamic range: a PQ or HLG source is tone-mapped to SDR
    #: for ``variants``.
    source_range: DynamicRange = DynamicRange.SDR
    #: The HDR ladder (``vod.ladder.hdr_variants``), when the hdrLadder knob
    #: is on and the source is HDR; encoded beside ``variants``.
    hdr_variants: tuple[Variant, ...] = ()
    #: A PQ source's HDR10 static metadata (mastering display, light levels)
    #: in x265's terms, which its HDR rungs carry on.
    hdr10: str = ""
    #: An SDR source in BT.2020 primaries, converted to BT.709 for
    #: ``variants``.
    wide_gamut: bool = False

    @property
    def video_variants(self) -> tuple[Variant, ...]:
        """Every video rung, the SDR ladder's first."""
        return self.variants + self.hdr_variants

    @property
    def audio_tracks(self) -> tuple[str, ...]:
        """The languages of the audio renditions; none without audio."""
        return self.audio_languages if self.has_audio else ()

    @property
    def ladder(self) -> Plan:
        return Plan(
            variants=self.variants,
            frame_rate=self.frame_rate,
            has_audio=self.has_audio,
        )

    def chunk(self, index: int) -> Chunk:
        if not 0 <= index < len(self.chunks):
            raise ValueError(
                f"chunk {index} is not in the plan, which has {len(self.chunks)}"
            )
        return self.chunks[index]

    @property
    def gop_frames(self) -> int:
        return gop_frames(self.frame_rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "duration": self.duration,
            "display": [self.display_width, self.display_height],
            "frameRate": _fraction(self.frame_rate),
            "sourceFrameRate": _fraction(self.source_frame_rate),
            "variants": [_variant_dict(v) for v in self.variants],
            "sourceRange": self.source_range.value,
            "hdrVariants": [_variant_dict(v) for v in self.hdr_variants],
            "hdr10": self.hdr10,
            "wideGamut": self.wide_gamut,
            "hasAudio": self.has_audio,
            "audioLanguages": list(self.audio_languages),
            "loudness": self.loudness.to_dict() if self.loudness else None,
            "videoStream": self.video_stream,
            "preset": self.preset,
            "seekable": self.seekable,
            "chunks": [c.to_dict() for c in self.chunks],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TranscodePlan:
        width, height = raw["display"]
        return cls(
            mode=Mode(raw["mode"]),
            duration=float(raw["duration"]),
            display_width=int(width),
            display_height=int(height),
            frame_rate=Fraction(raw["frameRate"]),
            source_frame_rate=Fraction(raw.get("sourceFrameRate", "0")),
            variants=tuple(_variant(v) for v in raw["variants"]),
            source_range=DynamicRange(raw.get("sourceRange", DynamicRange.SDR)),
            hdr_variants=tuple(_variant(v) for v in raw.get("hdrVariants", [])),
            hdr10=str(raw.get("hdr10", "")),
            wide_gamut=bool(raw.get("wideGamut", False)),
            has_audio=bool(raw["hasAudio"]),
            # A plan stored before alternate audio names one language.
            audio_languages=tuple(
                str(language)
                for language in raw.get(
                    "audioLanguages", [raw.get("audioLanguage", UNDETERMINED)]
                )
            ),
            loudness=(
                LoudnessTarget.from_dict(raw["loudness"])
                if raw.get("loudness")
                else None
            ),
            video_stream=int(raw.get("videoStream", 0)),
            preset=str(raw["preset"]),
            seekable=bool(raw.get("seekable", False)),
            chunks=tuple(
                Chunk.from_dict(index, chunk)
                for index, chunk in enumerate(raw["chunks"])
            ),
        )


def _variant_dict(variant: Variant) -> dict[str, Any]:
    return {
        "name": variant.name,
        "width": variant.width,
        "height": variant.height,
        "maxBitrate": variant.max_bitrate,
        "range": variant.dynamic_range.value,
    }


def _variant(raw: Mapping[str, Any]) -> Variant:
    return Variant(
        name=str(raw["name"]),
        width=int(raw["width"]),
        height=int(raw["height"]),
        max_bitrate=int(raw["maxBitrate"]),
        dynamic_range=DynamicRange(raw.get("range", DynamicRange.SDR)),
    )


def _fraction(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def clock(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: a time in a video, for messages."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
