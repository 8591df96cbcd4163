"""The published playlists, written from what the runs produced.

ffmpeg's own playlists are only read (for each segment's duration); the
worker writes every published playlist itself, the same way whether the
video was encoded in one run or in chunks:

- a media playlist per rung and for the audio: while a chunked video is
  encoded, an EVENT playlist that only grows, in order, as chunks land;
  at READY the same list as a VOD playlist with ``EXT-X-ENDLIST``. An
  ``EXT-X-MAP`` names the init segment, again wherever it changes (it does
  not, with x264's ``stitchable``; the tag keeps any chunk playable if it
  ever did). Segment numbers and times run on without a discontinuity;
- the master playlist with what Apple's HLS authoring spec asks of every
  variant: BANDWIDTH (the peak segment rate; before READY the caps, which
  the VBV holds, plus a tenth), AVERAGE-BANDWIDTH, CODECS, RESOLUTION,
  FRAME-RATE, VIDEO-RANGE (SDR for the 8-bit BT.709 H.264 rungs, an HDR
  source's among them tone-mapped; PQ or HLG for the HEVC rungs of the
  optional HDR ladder, listed after the SDR ones) and
  CLOSED-CAPTIONS=NONE (there are no CEA-608 captions in the video), and
  one AAC audio rendition group when there is audio: a rendition per source
  track, each with its NAME, LANGUAGE, DEFAULT (the first track) and
  AUTOSELECT;
- an I-frame playlist per rung (``EXT-X-I-FRAMES-ONLY``, no ffmpeg writes
  one): each GOP's keyframe as a byte range of its segment, from its
  fragment's ``moof`` to the end of the keyframe (``worker.fmp4``), lasting
  the GOP; the final master lists each with EXT-X-I-FRAME-STREAM-INF.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from vod.ladder import AUDIO_BITRATE, SEGMENT_SECONDS, DynamicRange
from vod.languages import UNDETERMINED, language_name

#: AAC-LC, the profile of ffmpeg's native AAC encoder.
AAC_LC_CODEC = "mp4a.40.2"
AUDIO_GROUP = "group_audio"
#: A rung's I-frame playlist, beside its media playlist.
IFRAME_PLAYLIST = "iframes.m3u8"
_MAP_URI = re.compile(r'#EXT-X-MAP:.*?URI="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class MediaPlaylist:
    """A media playlist as ffmpeg wrote it."""

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
class Segment:
    uri: str
    duration: float
    #: The init segment it decodes with.
    init: str
    #: In an I-frame playlist: the keyframe's (length, offset) in ``uri``.
    byte_range: tuple[int, int] | None = None


def media_playlist(
    segments: Sequence[Segment], *, complete: bool, iframes_only: bool = False
) -> str:
    """A media playlist of ``segments``: EVENT while it grows (players start
    at its beginning, not at its live edge), VOD with an end once
    ``complete``; ``iframes_only`` for segments that are keyframe ranges."""
    target = max([SEGMENT_SECONDS, *(math.floor(s.duration + 0.5) for s in segments)])
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        f"#EXT-X-PLAYLIST-TYPE:{'VOD' if complete else 'EVENT'}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    if iframes_only:
        lines.append("#EXT-X-I-FRAMES-ONLY")
    if not complete:
        lines.append("#EXT-X-START:TIME-OFFSET=0,PRECISE=YES")
    init = None
    for segment in segments:
        if segment.init != init:
            init = segment.init
            lines.append(f'#EXT-X-MAP:URI="{init}"')
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        if segment.byte_range is not None:
            length, offset = segment.byte_range
            lines.append(f"#EXT-X-BYTERANGE:{length}@{offset}")
        lines.append(segment.uri)
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def audio_name(language: str) -> str:
    """The rendition's NAME: the language's own name where known (Apple's
    spec asks for a name in the rendition's language), else the tag."""
    if language == UNDETERMINED:
        return "Original audio"
    return language_name(language)


def audio_names(languages: Sequence[str]) -> list[str]:
    """Each track's NAME, unique within the group as RFC 8216 requires: a
    language's second track is ``English 2``."""
    names: list[str] = []
    for index, language in enumerate(languages):
        name = audio_name(language)
        earlier = sum(audio_name(other) == name for other in languages[:index])
        names.append(f"{name} {earlier + 1}" if earlier else name)
    return names


@dataclasses.dataclass(frozen=True)
class Rates:
    """Measured rates in bit/s: over the whole (AVERAGE-BANDWIDTH) and of the
    peak segment (BANDWIDTH), the HLS spec's definitions."""

    average: int
    peak: int

    def __add__(self, other: Rates) -> Rates:
        return Rates(self.average + other.average, self.peak + other.peak)


def rates(sizes: Sequence[int], durations: Sequence[float]) -> Rates:
    """Rates of segments of ``sizes`` bytes lasting ``durations`` seconds."""
    seconds = sum(durations)
    if seconds <= 0:
        raise ValueError("no media time to measure")
    return Rates(
        average=round(sum(sizes) * 8 / seconds),
        peak=max(
            round(size * 8 / duration)
            for size, duration in zip(sizes, durations, strict=True)
            if duration > 0
        ),
    )


def iframe_rates(frames: Sequence[Segment]) -> Rates:
    """Rates of an I-frame playlist: its keyframe ranges over their GOPs."""
    return rates(
        [frame.byte_range[0] if frame.byte_range else 0 for frame in frames],
        [frame.duration for frame in frames],
    )


@dataclasses.dataclass(frozen=True)
class Variant:
    """One video rung as the master playlist lists it."""

    name: str
    width: int
    height: int
    codecs: str
    frame_rate: float
    #: None before READY: the caps stand in for the measured rates.
    rates: Rates | None
    max_bitrate: int
    video_range: DynamicRange = DynamicRange.SDR
    #: The rates of its I-frame playlist; None while there is none.
    iframe_rates: Rates | None = None

    @property
    def playlist(self) -> str:
        return f"{self.name}/index.m3u8"

    @property
    def iframe_playlist(self) -> str:
        return f"{self.name}/{IFRAME_PLAYLIST}"


def estimated_rates(max_bitrate: int) -> Rates:
    """Rates before the whole rendition is measured: the VBV holds segments
    to the cap, give or take a little, so the cap plus a tenth."""
    return Rates(max_bitrate, -(-max_bitrate * 11 // 10))


#: The AAC encoder's target, before its segments are measured.
ESTIMATED_AUDIO = estimated_rates(AUDIO_BITRATE)


@dataclasses.dataclass(frozen=True)
class AudioRendition:
    """One audio track as the master playlist lists it."""

    folder: str
    #: BCP 47.
    language: str
    #: Measured, or ESTIMATED_AUDIO before READY.
    rates: Rates


def master_playlist(
    variants: Sequence[Variant], *, audio: Sequence[AudioRendition] = ()
) -> str:
    """The master playlist; ``audio`` is the audio renditions, the default
    first, and none for a video without sound. Every variant plays with
    any of them, so its rates count the largest."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    names = audio_names([track.language for track in audio])
    for index, (track, name) in enumerate(zip(audio, names, strict=True)):
        default = "NO" if index else "YES"
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",'
            f'LANGUAGE="{track.language}",NAME="{name}",'
            f'DEFAULT={default},AUTOSELECT=YES,URI="{track.folder}/index.m3u8"'
        )
    largest = (
        Rates(
            max(track.rates.average for track in audio),
            max(track.rates.peak for track in audio),
        )
        if audio
        else None
    )
    for variant in variants:
        own = variant.rates or estimated_rates(variant.max_bitrate)
        total = own + largest if largest else own
        codecs = f"{variant.codecs},{AAC_LC_CODEC}" if audio else variant.codecs
        attributes = [
            f"BANDWIDTH={total.peak}",
            f"AVERAGE-BANDWIDTH={total.average}",
            f'CODECS="{codecs}"',
            f"RESOLUTION={variant.width}x{variant.height}",
            f"FRAME-RATE={variant.frame_rate:.3f}",
            f"VIDEO-RANGE={variant.video_range}",
            "CLOSED-CAPTIONS=NONE",
        ]
        if audio:
            attributes.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), variant.playlist]
    for variant in variants:
        if variant.iframe_rates is not None:
            lines.append(
                f"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={variant.iframe_rates.peak},"
                f"AVERAGE-BANDWIDTH={variant.iframe_rates.average},"
                f'CODECS="{variant.codecs}",'
                f"RESOLUTION={variant.width}x{variant.height},"
                f"VIDEO-RANGE={variant.video_range},"
                f'URI="{variant.iframe_playlist}"'
            )
    return "\n".join(lines) + "\n"
