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
  M5  CODECS lists the video codec of the variant's init segment (its avcC
      or hvcC profile and level), and an AAC codec when it plays with audio.
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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urljoin

import m3u8

from vod.ladder import SEGMENT_SECONDS

_BCP47 = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")

Fetch = Callable[[str], bytes]


class Nonconformance(AssertionError):
    """A clause the output fails."""


def _require(condition: object, clause: str, detail: str) -> None:
    if not condition:
        raise Nonconformance(f"{clause}: {detail}")


def check_vod(
    master_url: str, fetch: Fetch, *, codec_of: Callable[[bytes], str]
) -> None:
    """Check the stream at ``master_url``; ``fetch`` returns a URL's bytes,
    ``codec_of`` an init segment's RFC 6381 video codec (``avc1.64001f``)."""
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
        init = urljoin(playlist.absolute_uri, media.segment_map[0].uri)
        video = codec_of(fetch(init))
        _require(video in codecs, "M5", f"{where} CODECS {codecs} lacks {video}")
        if info.audio:
            _require(info.audio in audio_groups, "M6", f"{where} names no group")
            _require(
                any(c.startswith("mp4a.40.") for c in codecs), "M5", f"{where} AAC"
            )
    _require(len(set(bandwidths)) == len(bandwidths), "M7", "equal BANDWIDTHs")
    for renditions in audio_groups.values():
        for media in renditions:
            url = urljoin(master_url, media.uri)
            _check_media(
                m3u8.loads(fetch(url).decode(), uri=url), f"audio {media.name}"
            )
    for renditions in subtitle_groups.values():
        for media in renditions:
            _check_subtitles(urljoin(master_url, media.uri), fetch, video_seconds)


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
    frame = 1 / 23.976
    _require(
        all(abs(d - target) <= frame for d in durations[:-1]),
        "P5",
        f"{where} segment lengths {durations[:-1]}",
    )
    _require(durations[-1] <= target + frame, "P5", f"{where} last segment")
    _require((media.media_sequence or 0) == 0, "P6", f"{where} media sequence")
    uris = [segment.uri for segment in media.segments]
    _require(len(set(uris)) == len(uris), "P6", f"{where} repeats a segment")
