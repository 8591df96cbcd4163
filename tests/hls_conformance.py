"""A conformance check of our HLS output against the clauses of Apple's HLS
Authoring Specification for Apple Devices (and RFC 8216) that apply to a
VOD stream of fMP4 H.264 (or HEVC) video and AAC audio. Playlists are parsed with
the maintained ``m3u8`` library, not with regexes of our own.

Clauses checked (``check_vod`` raises ``Nonconformance`` naming the first
that fails):

Master playlist
  M1  EXT-X-VERSION is present, and is at least 7 (fMP4 with EXT-X-MAP).
  M2  EXT-X-INDEPENDENT-SEGMENTS is present (every segment starts with an
      IDR frame).
  M3  Every EXT-X-STREAM-INF has BANDWIDTH, AVERAGE-BANDWIDTH, CODECS,
      RESOLUTION and FRAME-RATE; AVERAGE-BANDWIDTH <= BANDWIDTH.
  M4  Every EXT-X-STREAM-INF has VIDEO-RANGE (SDR, PQ or HLG), and
      CLOSED-CAPTIONS=NONE when the stream carries no closed captions.
  M5  CODECS matches the streams as a decoder reads them (``probe``, e.g.
      ffprobe, of the init and first segment): the avc1 or hvc1 entry's
      profile and level are the video's, and with audio the mp4a entry's
      object type is the audio rendition's AAC profile (40.2 for LC).
  M6  Every EXT-X-MEDIA has NAME, LANGUAGE (a BCP 47 tag), DEFAULT and
      AUTOSELECT; every AUDIO group a variant names exists, and has one
      DEFAULT=YES rendition.
  M7  Variants are listed with distinct BANDWIDTH.
  S1  When there is a SUBTITLES group, every variant names it (SUBTITLES=),
      and every group a variant names exists.
  S2  Within a SUBTITLES group NAMEs are unique and at most one rendition
      is DEFAULT=YES.

Media playlists (every variant and rendition)
  P1  EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST.
  P2  EXT-X-TARGETDURATION is at least every EXTINF rounded to the nearest
      second; the target is 6 s (the recommended segment length).
  P3  EXT-X-MAP names the init segment; no EXT-X-DISCONTINUITY.
  P4  EXT-X-INDEPENDENT-SEGMENTS (or in the master, M2).
  P5  Every segment but the last lasts the target duration, to within a
      frame, and none is longer.
  P6  The media sequence starts at 0 and segment URIs are unique.

Subtitle playlists (every SUBTITLES rendition): P1, P2, P5 and P6, and
  S3  No EXT-X-MAP: segments are WebVTT files, each starting with the
      WEBVTT header and carrying X-TIMESTAMP-MAP (RFC 8216 3.5), which
      maps its cue times onto the media timeline.
  S4  The playlist lasts as long as the video's, to within half a second.

I-frame playlists (every video variant)
  I1  Each variant has one EXT-X-I-FRAME-STREAM-INF with its RESOLUTION
      and its CODECS video entry, and BANDWIDTH, AVERAGE-BANDWIDTH (not
      above BANDWIDTH), VIDEO-RANGE and a URI; it has no AUDIO or
      FRAME-RATE.
  I2  The I-frame playlist is VOD with EXT-X-ENDLIST, EXT-X-I-FRAMES-ONLY,
      EXT-X-VERSION >= 4 and the variant's EXT-X-MAP; every entry has an
      EXT-X-BYTERANGE and lasts no longer than the target duration.
  I3  There is one entry per keyframe: as many as the variant's GOPs, and
      their durations add up to the variant's (within a frame).
  I4  A byte range starts at a ``moof`` and holds the ``mdat`` header; the
      second range (a keyframe that only splitting a segment's fragment
      makes addressable) and the last hold the keyframe: after the init
      segment, each decodes (``keyframe_time``) to a keyframe, at the time
      the entries before it add up to (plus the composition delay, which
      B-frames add, of the second). Decoding every range would cost a
      decoder run per GOP.
"""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urljoin

import m3u8

from vod.ladder import GOP_SECONDS, SEGMENT_SECONDS

_BCP47 = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")
#: profile_idc by codec and the profile name a decoder (ffprobe) reports.
_PROFILES = {
    "h264": {"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "High": 100},
    "hevc": {"Main": 1, "Main 10": 2},
}
_VIDEO_ENTRIES = ("avc1.", "hvc1.", "hev1.")
#: MPEG-4 audio object type by AAC profile name.
_AAC_OBJECT_TYPES = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}
_FRAME = 1 / 23.976

Fetch = Callable[[str], bytes]
#: What a decoder says of a stream, given an init and a media segment:
#: ``codec_name``, ``profile`` and, for video, ``level``.
Probe = Callable[[bytes], Mapping[str, Any]]
#: The time of the one keyframe that an init and a byte range decode to,
#: or None when they decode to none.
KeyframeTime = Callable[[bytes, bytes], float | None]


class Nonconformance(AssertionError):
    """A clause the output fails."""


def _require(condition: object, clause: str, detail: str) -> None:
    if not condition:
        raise Nonconformance(f"{clause}: {detail}")


def check_vod(
    master_url: str, fetch: Fetch, *, probe: Probe, keyframe_time: KeyframeTime
) -> None:
    """Check the stream at ``master_url``; ``fetch`` returns a URL's bytes."""
    text = fetch(master_url).decode()
    master = m3u8.loads(text, uri=master_url)
    _require(master.is_variant, "M0", "not a master playlist")
    _require(master.version and int(master.version) >= 7, "M1", "EXT-X-VERSION < 7")
    _require(master.is_independent_segments, "M2", "no EXT-X-INDEPENDENT-SEGMENTS")
    audio_groups: dict[str, list[m3u8.Media]] = {}
    subtitle_groups: dict[str, list[m3u8.Media]] = {}
    for media in master.media:
        where = f"EXT-X-MEDIA {media.name!r}"
        for attribute in ("name", "language", "default", "autoselect"):
            _require(getattr(media, attribute), "M6", f"{where} lacks {attribute}")
        _require(_BCP47.fullmatch(media.language or ""), "M6", f"{where} language")
        if media.type == "AUDIO":
            audio_groups.setdefault(media.group_id, []).append(media)
        if media.type == "SUBTITLES":
            subtitle_groups.setdefault(media.group_id, []).append(media)
    for group, renditions in audio_groups.items():
        defaults = [m for m in renditions if m.default == "YES"]
        _require(
            len(defaults) == 1, "M6", f"group {group} has {len(defaults)} defaults"
        )
    for group, renditions in subtitle_groups.items():
        names = [m.name for m in renditions]
        _require(len(set(names)) == len(names), "S2", f"group {group} NAMEs {names}")
        defaults = [m for m in renditions if m.default == "YES"]
        _require(
            len(defaults) <= 1, "S2", f"group {group} has {len(defaults)} defaults"
        )
    bandwidths = []
    video_seconds = 0.0
    audio_probed: dict[str, Mapping[str, Any]] = {}
    for renditions in audio_groups.values():
        for media in renditions:
            url = urljoin(master_url, media.uri)
            playlist = m3u8.loads(fetch(url).decode(), uri=url)
            _check_media(playlist, f"audio {media.name}")
            audio_probed[media.group_id] = probe(_first_segment(playlist, url, fetch))
    for playlist in master.playlists:
        info = playlist.stream_info
        where = f"variant {playlist.uri}"
        for attribute in ("bandwidth", "average_bandwidth", "codecs", "resolution"):
            _require(getattr(info, attribute), "M3", f"{where} lacks {attribute}")
        _require(info.frame_rate, "M3", f"{where} lacks FRAME-RATE")
        _require(info.average_bandwidth <= info.bandwidth, "M3", f"{where} average")
        _require(info.video_range in ("SDR", "PQ", "HLG"), "M4", f"{where} VIDEO-RANGE")
        _require(info.closed_captions == "NONE", "M4", f"{where} CLOSED-CAPTIONS")
        bandwidths.append(info.bandwidth)
        codecs = info.codecs.split(",")
        media = m3u8.loads(
            fetch(playlist.absolute_uri).decode(), uri=playlist.absolute_uri
        )
        _check_media(media, where)
        video_seconds = sum(segment.duration for segment in media.segments)
        _require(
            info.subtitles in subtitle_groups
            or not (info.subtitles or subtitle_groups),
            "S1",
            f"{where} SUBTITLES={info.subtitles!r}, groups {sorted(subtitle_groups)}",
        )
        video = probe(_first_segment(media, playlist.absolute_uri, fetch))
        entries = [c for c in codecs if c.startswith(_VIDEO_ENTRIES)]
        _require(
            [_profile_level(c) for c in entries] == [_profile_level_of(video)],
            "M5",
            f"{where} CODECS {codecs}, but the video is {dict(video)}",
        )
        if info.audio:
            _require(info.audio in audio_groups, "M6", f"{where} names no group")
            aac = [c for c in codecs if c.startswith("mp4a.40.")]
            profile = str(audio_probed[info.audio].get("profile"))
            expected = _AAC_OBJECT_TYPES.get(profile)
            _require(
                aac == [f"mp4a.40.{expected}"],
                "M5",
                f"{where} CODECS {codecs}, but the audio is "
                f"{dict(audio_probed[info.audio])}",
            )
        # Its I-frame playlist: of its size and video codec (an HDR variant
        # can have an SDR one's size).
        iframes = [
            iframe
            for iframe in master.iframe_playlists
            if iframe.iframe_stream_info.resolution == info.resolution
            and (iframe.iframe_stream_info.codecs or "").split(",") == entries
        ]
        _require(len(iframes) == 1, "I1", f"{where} has no I-frame playlist")
        _check_iframes(iframes[0], media, fetch, keyframe_time, where)
    _require(len(set(bandwidths)) == len(bandwidths), "M7", "equal BANDWIDTHs")
    for renditions in subtitle_groups.values():
        for media in renditions:
            _check_subtitles(urljoin(master_url, media.uri), fetch, video_seconds)


def _first_segment(media: m3u8.M3U8, url: str, fetch: Fetch) -> bytes:
    """The init and first media segment of a media playlist, as one file."""
    init = fetch(urljoin(url, media.segment_map[0].uri))
    return init + fetch(urljoin(url, media.segments[0].uri))


def _profile_level(codec: str) -> tuple[str, int, int]:
    """An ``avc1.PPCCLL`` or ``hvc1.P.F.LLL...`` entry's codec, profile_idc
    and level_idc; a malformed entry matches no stream."""
    if match := re.fullmatch(
        r"avc1\.([0-9a-fA-F]{2})[0-9a-fA-F]{2}([0-9a-fA-F]{2})", codec
    ):
        return "h264", int(match[1], 16), int(match[2], 16)
    if match := re.fullmatch(
        r"(?:hvc1|hev1)\.[ABC]?(\d+)\.[0-9A-F]+\.[LH](\d+)(\.[0-9A-F]+)*", codec
    ):
        return "hevc", int(match[1]), int(match[2])
    return "", -1, -1


def _profile_level_of(stream: Mapping[str, Any]) -> tuple[str, int, int]:
    codec = str(stream.get("codec_name", ""))
    profile = _PROFILES.get(codec, {}).get(str(stream.get("profile")), 0)
    return codec, profile, int(stream.get("level", 0))


def _check_iframes(
    iframe: m3u8.IFramePlaylist,
    variant: m3u8.M3U8,
    fetch: Fetch,
    keyframe_time: KeyframeTime,
    where: str,
) -> None:
    info = iframe.iframe_stream_info
    where = f"{where} I-frames {iframe.uri}"
    for attribute in ("bandwidth", "average_bandwidth", "codecs", "video_range"):
        _require(getattr(info, attribute), "I1", f"{where} lacks {attribute}")
    _require(info.average_bandwidth <= info.bandwidth, "I1", f"{where} average")
    _require(info.audio is None and info.frame_rate is None, "I1", where)
    url = iframe.absolute_uri
    media = m3u8.loads(fetch(url).decode(), uri=url)
    _require(media.is_i_frames_only, "I2", f"{where} lacks EXT-X-I-FRAMES-ONLY")
    _require(media.version and int(media.version) >= 4, "I2", f"{where} version")
    _require(media.playlist_type == "vod" and media.is_endlist, "I2", f"{where} VOD")
    _require(
        media.segment_map and media.segment_map[0].uri == variant.segment_map[0].uri,
        "I2",
        f"{where} EXT-X-MAP",
    )
    entries = media.segments
    _require(all(e.byterange for e in entries), "I2", f"{where} lacks byte ranges")
    target = media.target_duration or 0
    _require(all(e.duration <= target for e in entries), "I2", f"{where} overlong")
    total = sum(s.duration for s in variant.segments)
    gop = entries[0].duration if entries else GOP_SECONDS
    gops = math.ceil(total / gop - 0.01)
    _require(len(entries) == gops, "I3", f"{where} has {len(entries)} of {gops}")
    _require(
        all(abs(e.duration - gop) <= _FRAME for e in entries[:-1]),
        "I3",
        f"{where} entries are not one GOP each",
    )
    listed = sum(e.duration for e in entries)
    _require(
        abs(listed - total) <= _FRAME, "I3", f"{where} lasts {listed}, not {total}"
    )
    init = fetch(urljoin(url, media.segment_map[0].uri))
    start = 0.0
    delay: float | None = None
    segments: dict[str, bytes] = {}
    for number, entry in enumerate(entries):
        length, _, offset = entry.byterange.partition("@")
        uri = urljoin(url, entry.uri)
        if uri not in segments:
            segments = {uri: fetch(uri)}
        data = segments[uri][int(offset) : int(offset) + int(length)]
        _require(
            len(data) > 16 and data[4:8] == b"moof",
            "I4",
            f"{where} range {entry.byterange} does not start at a moof",
        )
        (moof,) = struct.unpack_from(">I", data)
        _require(
            data[moof + 4 : moof + 8] == b"mdat",
            "I4",
            f"{where} range {entry.byterange} lacks the mdat header",
        )
        if number not in (1, len(entries) - 1):
            start += entry.duration
            continue
        time = keyframe_time(init, data)
        if delay is None and time is not None:
            delay = time - start
        _require(
            time is not None and abs(time - start - (delay or 0)) <= _FRAME / 2,
            "I4",
            f"{where} range {entry.byterange} decodes to a keyframe at {time}, "
            f"not {start:.3f} + {delay}",
        )
        start += entry.duration


def _check_subtitles(url: str, fetch: Fetch, video_seconds: float) -> None:
    where = f"subtitles {url.rsplit('/', 3)[-3:]}"
    playlist = m3u8.loads(fetch(url).decode(), uri=url)
    _require(not playlist.segment_map, "S3", f"{where} has an EXT-X-MAP")
    _check_media(playlist, where, fmp4=False)
    for segment in playlist.segments:
        text = fetch(segment.absolute_uri).decode()
        header = text.split("\n\n", 1)[0].splitlines()
        _require(
            header and header[0].startswith("WEBVTT"), "S3", f"{segment.uri} header"
        )
        _require(
            any(line.startswith("X-TIMESTAMP-MAP=") for line in header),
            "S3",
            f"{segment.uri} has no X-TIMESTAMP-MAP",
        )
    seconds = sum(segment.duration for segment in playlist.segments)
    _require(
        abs(seconds - video_seconds) <= 0.5,
        "S4",
        f"{where} lasts {seconds:.3f} s, the video {video_seconds:.3f} s",
    )


def _check_media(media: m3u8.M3U8, where: str, *, fmp4: bool = True) -> None:
    _require(media.playlist_type == "vod", "P1", f"{where} is not a VOD playlist")
    _require(media.is_endlist, "P1", f"{where} has no EXT-X-ENDLIST")
    target = media.target_duration
    _require(target == SEGMENT_SECONDS, "P2", f"{where} target {target}")
    durations = [segment.duration for segment in media.segments]
    _require(durations, "P2", f"{where} has no segments")
    _require(all(int(d + 0.5) <= target for d in durations), "P2", f"{where} overlong")
    if fmp4:
        _require(media.segment_map, "P3", f"{where} has no EXT-X-MAP")
        _require(
            not any(segment.discontinuity for segment in media.segments),
            "P3",
            f"{where} has a discontinuity",
        )
        _require(media.is_independent_segments, "P4", f"{where} independent segments")
    _require(
        all(abs(d - target) <= _FRAME for d in durations[:-1]),
        "P5",
        f"{where} segment lengths {durations[:-1]}",
    )
    _require(durations[-1] <= target + _FRAME, "P5", f"{where} last segment")
    _require((media.media_sequence or 0) == 0, "P6", f"{where} media sequence")
    uris = [segment.uri for segment in media.segments]
    _require(len(set(uris)) == len(uris), "P6", f"{where} repeats a segment")


def check_vod_with_ffprobe(master_url: str, fetch: Fetch) -> None:
    """``check_vod`` with ffprobe as the decoder."""
    check_vod(master_url, fetch, probe=_probe, keyframe_time=_keyframe_time)


def _ffprobe(data: bytes, *entries: str) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "quiet", *entries, "-of", "json", "-i", "pipe:0"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    parsed: dict[str, Any] = json.loads(result.stdout or b"{}")
    return parsed


def _probe(data: bytes) -> Mapping[str, Any]:
    streams = _ffprobe(data, "-show_entries", "stream=codec_name,profile,level")
    return dict(streams["streams"][0])


def _keyframe_time(init: bytes, data: bytes) -> float | None:
    frames = _ffprobe(
        init + data, "-select_streams", "v", "-show_entries", "frame=key_frame,pts_time"
    ).get("frames", [])
    if not frames or frames[0]["key_frame"] != 1:
        return None
    return float(frames[0]["pts_time"])
