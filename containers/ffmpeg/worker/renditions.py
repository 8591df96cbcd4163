"""What one ffmpeg run produced for one rendition, made ready to publish.

A run writes, per rendition folder, an init segment and numbered media
segments. Here they get their published names: the init is named after its
content (``init-1a2b3c4d5e6f.mp4``: equal inits share one object). A chunk's
run cut a segment per GOP: its pre-roll GOPs are dropped, the rest joined
three to a segment, numbered and timed as segments of the whole video
(``vod.plan``: chunk ``c`` starts at segment ``first_segment`` and frame
``first_frame``). A video rendition's segments are then cut into one
fragment per GOP, numbered as the whole video's GOPs, which gives its
I-frame playlist's byte ranges; both paths do the same.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

from vod.plan import GOPS_PER_SEGMENT
from worker import fmp4
from worker.encode import VARIANT_PLAYLIST
from worker.hls import MediaPlaylist, Rates, Segment, rates

SEGMENT_NAME = "seg_{:05d}.m4s"


@dataclasses.dataclass(frozen=True)
class Rendition:
    name: str
    folder: Path
    #: The init segment's published name (a file of that name in ``folder``).
    init: str
    #: Published segment names and durations, in order.
    segments: tuple[tuple[str, float], ...]
    #: A video rendition's keyframes, in order, as I-frame playlist entries.
    iframes: tuple[Segment, ...] = ()

    @property
    def duration(self) -> float:
        return sum(seconds for _, seconds in self.segments)

    def paths(self) -> list[Path]:
        return [self.folder / name for name, _ in self.segments]

    def sizes(self) -> list[int]:
        return [path.stat().st_size for path in self.paths()]

    def rates(self) -> Rates:
        return rates(self.sizes(), [seconds for _, seconds in self.segments])

    def published(self) -> list[Segment]:
        return [Segment(name, seconds, self.init) for name, seconds in self.segments]

    def files(self, prefix: str) -> dict[str, Path]:
        """Object key (under ``prefix``) -> local file, init and segments."""
        names = [self.init, *(name for name, _ in self.segments)]
        return {f"{prefix}{self.name}/{name}": self.folder / name for name in names}


def collect(out_dir: Path, name: str, *, video: bool) -> Rendition:
    """The rendition ``name`` of a one-run encode in ``out_dir``, as ffmpeg
    segmented it (a ``video`` one cut into GOP fragments)."""
    segments = _ffmpeg_playlist(out_dir, name).segments
    return _publish(out_dir, name, segments, video=video)


def collect_chunk(
    out_dir: Path,
    name: str,
    *,
    first_segment: int,
    first_frame: int,
    frame_rate: Fraction,
    preroll_gops: int,
    gops_per_segment: int,
) -> Rendition:
    """The rendition ``name`` of a chunk's run: its GOP segments past the
    pre-roll, joined ``gops_per_segment`` at a time, moved to start at
    ``first_segment`` and frame ``first_frame`` of the video. A GOP segment
    without media (a run that reached no frame) is dropped."""
    playlist = _ffmpeg_playlist(out_dir, name)
    folder = out_dir / name
    gops = [
        (uri, seconds)
        for uri, seconds in playlist.segments
        if fmp4.fragment_count((folder / uri).read_bytes())
    ][preroll_gops:]
    assert playlist.init is not None
    timescale = fmp4.timescale((folder / playlist.init).read_bytes())
    ticks = Fraction(first_frame) * timescale / frame_rate
    if ticks.denominator != 1:
        raise RuntimeError(f"{name}: frame {first_frame} is not a whole tick")
    # The run's own time starts at its first, pre-roll, frame.
    preroll_seconds = sum(seconds for _, seconds in playlist.segments[:preroll_gops])
    shift = int(ticks) - round(Fraction(preroll_seconds) * timescale)
    joined: list[tuple[str, float]] = []
    for start in range(0, len(gops), gops_per_segment):
        group = gops[start : start + gops_per_segment]
        data = fmp4.join_segments([(folder / uri).read_bytes() for uri, _ in group])
        fmp4.shift_fragments(data, ticks=shift)
        part = folder / f"joined_{len(joined):05d}.m4s"
        part.write_bytes(data)
        joined.append((part.name, sum(seconds for _, seconds in group)))
    return _publish(
        out_dir, name, tuple(joined), video=True, first_segment=first_segment
    )


def _ffmpeg_playlist(out_dir: Path, name: str) -> MediaPlaylist:
    playlist = MediaPlaylist.parse((out_dir / name / VARIANT_PLAYLIST).read_text())
    if playlist.init is None:
        raise RuntimeError(f"ffmpeg wrote no init segment for {name}")
    return playlist


def _publish(
    out_dir: Path,
    name: str,
    segments: tuple[tuple[str, float], ...],
    *,
    video: bool,
    first_segment: int = 0,
) -> Rendition:
    """Move the init and ``segments`` of ``out_dir/name`` to their published
    names in a folder of their own; segments without media are left out. A
    ``video`` rendition's segments are cut into GOP fragments, numbered from
    the GOP it starts at, and its keyframes listed."""
    folder = out_dir / name
    published = folder / "published"
    published.mkdir()
    init_uri = _ffmpeg_playlist(out_dir, name).init
    assert init_uri is not None
    init = (folder / init_uri).read_bytes()
    init_name = fmp4.content_name(init)
    (published / init_name).write_bytes(init)
    listed: list[tuple[str, float]] = []
    iframes: list[Segment] = []
    sequence = 1 + first_segment * GOPS_PER_SEGMENT
    timescale = fmp4.timescale(init) if video else 1
    for uri, seconds in segments:
        data: bytes | bytearray = (folder / uri).read_bytes()
        if not fmp4.fragment_count(data):
            continue
        target = SEGMENT_NAME.format(first_segment + len(listed))
        if video:
            data = fmp4.split_gops(data, first_sequence=sequence)
            for keyframe in fmp4.keyframes(data):
                iframes.append(
                    Segment(
                        target,
                        keyframe.ticks / timescale,
                        init_name,
                        (keyframe.length, keyframe.offset),
                    )
                )
                sequence += 1
        (published / target).write_bytes(data)
        listed.append((target, seconds))
    return Rendition(name, published, init_name, tuple(listed), tuple(iframes))
