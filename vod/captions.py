"""Caption tracks: reading WebVTT and SRT, a track's entry on the record, and
publishing it as an HLS SUBTITLES rendition (segmented WebVTT, its media
playlist, and the master's EXT-X-MEDIA lines), without touching the video.

Everything here is pure; the videos function and the captions function do
the reads and writes. Publishing only reads the record's ``duration`` and
``playback`` and rewrites the master's text, so it works the same on the
FFmpeg workers' output and on MediaConvert's.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vod.keys import output_prefix
from vod.ladder import SEGMENT_SECONDS
from vod.languages import language_name

#: The largest caption file the API takes: some hours of dense dialogue in
#: WebVTT are well under 1 MiB, and the body arrives in one Lambda event.
MAX_CAPTION_BYTES = 1024 * 1024
MAX_LABEL_CHARS = 64
SUBTITLES_GROUP = "subs"
#: Under a video's output folder: the tracks' files as stored, and their
#: published renditions (the IAM grants are scoped to these folders).
CAPTIONS_FOLDER = "captions/"
SUBTITLES_FOLDER = "subs/"
#: Both encoders' fMP4 timelines start at 0 (the worker encodes each chunk
#: from time 0 and shifts its fragments by the chunk's start; MediaConvert's
#: timecode source is ZEROBASED), so a cue's LOCAL time 0 is media time 0:
#: 0 on the 90 kHz MPEG-TS clock. The first frame is shown after x264's
#: B-frame reorder delay (two frames, 67 ms at 30 fps), so cues lead the
#: picture by that much at most, well under what viewers notice.
MPEGTS_AT_ZERO = 0
_TIMESTAMP_MAP = f"X-TIMESTAMP-MAP=MPEGTS:{MPEGTS_AT_ZERO},LOCAL:00:00:00.000"

_TIME = r"(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)[.,](\d{3})"
_TIMING = re.compile(rf"^{_TIME}[ \t]+-->[ \t]+{_TIME}(?:[ \t]+(?P<settings>.*))?$")
_WEBVTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
_SUBTITLES_MEDIA = "#EXT-X-MEDIA:TYPE=SUBTITLES,"
_SUBTITLES_ATTRIBUTE = re.compile(r',SUBTITLES="[^"]*"')


class CaptionsError(ValueError):
    """A caption file that is not WebVTT or SRT, with what is wrong in it."""


@dataclasses.dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str
    #: WebVTT cue settings (``line:0 align:start``), kept as sent.
    settings: str = ""

    def to_webvtt(self) -> str:
        timing = f"{_clock(self.start)} --> {_clock(self.end)}"
        if self.settings:
            timing += f" {self.settings}"
        return f"{timing}\n{self.text}"


def parse_captions(text: str) -> list[Cue]:
    """The cues of a WebVTT or SRT file (told apart by WebVTT's header),
    in time order; raises CaptionsError naming the line at fault."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks = _blocks(lines.split("\n"))
    if not blocks:
        raise CaptionsError("the file is empty")
    first_number, first = blocks[0]
    webvtt = bool(_WEBVTT_HEADER.match(first[0]))
    if webvtt:
        blocks = blocks[1:]
    cues = []
    for number, block in blocks:
        if webvtt and block[0].split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        timing_at = 0 if _TIMING.match(block[0]) else 1
        if timing_at >= len(block) or not _TIMING.match(block[timing_at]):
            kind = "WebVTT" if webvtt else "SRT (or WebVTT without its header)"
            raise CaptionsError(
                f"line {number}: expected a cue, whose first or second line is "
                f"a timing like 00:00:01.000 --> 00:00:02.500 as {kind} has; "
                f"got {block[0][:80]!r}"
            )
        if not webvtt and timing_at == 1 and not block[0].strip().isdigit():
            raise CaptionsError(
                f"line {number}: an SRT cue starts with its number, "
                f"got {block[0][:80]!r}"
            )
        match = _TIMING.match(block[timing_at])
        assert match is not None
        start, end = _seconds(match.groups()[0:4]), _seconds(match.groups()[4:8])
        if end <= start:
            raise CaptionsError(
                f"line {number + timing_at}: the cue ends before it starts"
            )
        body = "\n".join(block[timing_at + 1 :]).replace("-->", "->")
        settings = (match["settings"] or "").strip() if webvtt else ""
        cues.append(Cue(start, end, body, settings))
    if not cues:
        raise CaptionsError(f"line {first_number}: the file has no cues")
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def to_webvtt(cues: Iterable[Cue], *, timestamp_map: bool = False) -> str:
    header = f"WEBVTT\n{_TIMESTAMP_MAP}" if timestamp_map else "WEBVTT"
    return "\n\n".join([header, *(cue.to_webvtt() for cue in cues)]) + "\n"


def segment_count(duration: float) -> int:
    return max(1, math.ceil(duration / SEGMENT_SECONDS - 1e-6))


def segment_name(index: int) -> str:
    return f"{index:05d}.vtt"


def segments(cues: Sequence[Cue], duration: float) -> list[str]:
    """The WebVTT segments of a video lasting ``duration`` seconds, one per
    video segment length; a cue spanning a boundary is in both segments (a
    player drops the repeat), and a cue past the end is left out."""
    count = segment_count(duration)
    texts = []
    for index in range(count):
        start = index * SEGMENT_SECONDS
        end = duration if index == count - 1 else start + SEGMENT_SECONDS
        texts.append(
            to_webvtt(
                (cue for cue in cues if cue.start < end and cue.end > start),
                timestamp_map=True,
            )
        )
    return texts


def subtitle_playlist(duration: float) -> str:
    """The VOD media playlist of the segments ``segments`` makes."""
    count = segment_count(duration)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for index in range(count):
        length = (
            duration - index * SEGMENT_SECONDS
            if index == count - 1
            else SEGMENT_SECONDS
        )
        lines += [f"#EXTINF:{length:.6f},", segment_name(index)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class CaptionStatus(enum.StrEnum):
    #: Stored, not yet in the master (the video is not READY, or the
    #: captions function has not run yet).
    PENDING = "PENDING"
    PUBLISHED = "PUBLISHED"
    #: The stored file could not be published; ``error`` says why.
    FAILED = "FAILED"


class AutoCaptionStatus(enum.StrEnum):
    """What became of a video's Transcribe job (the record's ``auto_captions``
    ``status``)."""

    IN_PROGRESS = "IN_PROGRESS"
    #: Its track was added (``language``).
    ADDED = "ADDED"
    #: Nothing to add: no speech, or an uploaded track stays (``reason``).
    NONE = "NONE"
    #: The job failed or named an unknown language (``reason``).
    FAILED = "FAILED"


@dataclasses.dataclass(frozen=True)
class CaptionTrack:
    """A track as the record's ``captions`` map holds it, keyed by language."""

    language: str
    label: str
    #: Made by Amazon Transcribe rather than uploaded.
    auto: bool
    #: Names this upload of the track's file; a new upload of the language
    #: gets a new one, so its files never overwrite the published ones.
    revision: str
    status: CaptionStatus = CaptionStatus.PENDING
    error: str | None = None

    @classmethod
    def from_raw(cls, language: str, raw: Mapping[str, Any]) -> CaptionTrack:
        return cls(
            language=language,
            label=str(raw.get("label") or language_name(language)),
            auto=bool(raw.get("auto", False)),
            revision=str(raw["revision"]),
            status=CaptionStatus(raw.get("status", CaptionStatus.PENDING)),
            error=raw.get("error"),
        )

    def to_raw(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "label": self.label,
            "auto": self.auto,
            "revision": self.revision,
            "status": str(self.status),
        }
        if self.error:
            raw["error"] = self.error
        return raw

    def public(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "label": self.label,
            "auto": self.auto,
            "status": str(self.status),
            "error": self.error,
        }

    def source_key(self, video_id: str) -> str:
        """The track's WebVTT file as uploaded (or as Transcribe made it)."""
        return (
            f"{output_prefix(video_id)}{CAPTIONS_FOLDER}"
            f"{self.language}/{self.revision}.vtt"
        )

    def folder(self, video_id: str) -> str:
        """Where its segments and media playlist are published."""
        return (
            f"{output_prefix(video_id)}{SUBTITLES_FOLDER}"
            f"{self.language}/{self.revision}/"
        )

    def published_keys(self, video_id: str, duration: float) -> list[str]:
        folder = self.folder(video_id)
        return [
            folder + "index.m3u8",
            *(folder + segment_name(i) for i in range(segment_count(duration))),
        ]


def tracks_of(captions: Mapping[str, Any] | None) -> list[CaptionTrack]:
    """The record's tracks, ordered by language."""
    return [
        CaptionTrack.from_raw(language, raw)
        for language, raw in sorted((captions or {}).items())
    ]


def with_subtitles(
    master: str, master_key: str, video_id: str, tracks: Sequence[CaptionTrack]
) -> str:
    """``master`` with exactly ``tracks`` as its SUBTITLES group (none: the
    group and every variant's reference to it are gone). Every other line
    stays as the encoder wrote it."""
    base = posixpath.dirname(master_key)
    media = []
    names: set[str] = set()
    for track in tracks:
        name = track.label + (" (auto)" if track.auto else "")
        # NAME is unique within a group (RFC 8216 4.3.4.1.1).
        if name in names:
            name = f"{name} ({track.language})"
        names.add(name)
        uri = posixpath.relpath(track.folder(video_id) + "index.m3u8", base)
        media.append(
            f'{_SUBTITLES_MEDIA}GROUP-ID="{SUBTITLES_GROUP}",'
            f'LANGUAGE="{track.language}",NAME="{name}",DEFAULT=NO,'
            f'AUTOSELECT=YES,FORCED=NO,URI="{uri}"'
        )
    lines = []
    for line in master.splitlines():
        if line.startswith(_SUBTITLES_MEDIA):
            continue
        if line.startswith(("#EXT-X-STREAM-INF:", "#EXT-X-I-FRAME-STREAM-INF:")):
            lines += media
            media = []
        if line.startswith("#EXT-X-STREAM-INF:"):
            line = _SUBTITLES_ATTRIBUTE.sub("", line)
            if tracks:
                line += f',SUBTITLES="{SUBTITLES_GROUP}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with its first line's number (from 1)."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not current:
                blocks.append((number, current))
            current.append(line.rstrip())
        else:
            current = []
    return [(number, block) for number, block in blocks if block]


def _seconds(parts: Sequence[str | None]) -> float:
    hours, minutes, seconds, millis = parts
    return (
        int(hours or 0) * 3600
        + int(minutes or 0) * 60
        + int(seconds or 0)
        + int(millis or 0) / 1000
    )


def _clock(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
