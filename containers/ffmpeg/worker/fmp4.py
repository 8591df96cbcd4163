"""The few fragmented-MP4 facts the worker needs, read and changed in place.

A chunk is encoded on its own, one fragment per GOP, so its fragments start
at time 0 and count from 1. Joined into one rendition they must carry the
rendition's time: each fragment's decode time (``tfdt``) moves by the
chunk's start and the fragment sequence numbers (``mfhd``) continue the
earlier chunks'; three GOPs' fragments make one media segment. Box sizes
never change, so the rest of the file stays valid byte for byte. With
x264's ``stitchable`` option every chunk's init segment is the same, and
the first chunk's plays them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Iterator

#: Boxes whose payload is a list of boxes, on the paths this module reads.
_CONTAINERS = frozenset(
    {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"}
)


class Fmp4Error(ValueError):
    """A file that is not the fragmented MP4 ffmpeg's HLS muxer writes."""


@dataclasses.dataclass(frozen=True)
class Box:
    kind: bytes
    #: Offset of the box (its size field) and of its payload in the file.
    start: int
    payload: int
    end: int


def boxes(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> Iterator[Box]:
    """Every box, depth first, descending into the containers above."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        if at + 8 > end:
            raise Fmp4Error(f"truncated box header at byte {at}")
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if at + 16 > end:
                raise Fmp4Error(f"truncated box header at byte {at}")
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise Fmp4Error(f"box {kind!r} at byte {at} has a bad size {size}")
        box = Box(kind, at, at + header, at + size)
        yield box
        if kind in _CONTAINERS:
            yield from boxes(data, box.payload, box.end)
        at += size


def timescale(init: bytes) -> int:
    """The media timescale (ticks per second) of the init segment's track."""
    for box in boxes(init):
        if box.kind == b"mdhd":
            version = init[box.payload]
            offset = box.payload + 4 + (16 if version == 1 else 8)
            (scale,) = struct.unpack_from(">I", init, offset)
            if scale <= 0:
                raise Fmp4Error("the track's timescale is 0")
            return int(scale)
    raise Fmp4Error("no mdhd box: not an init segment")


def fragment_count(segment: bytes) -> int:
    return sum(1 for box in boxes(segment) if box.kind == b"moof")


def join_segments(parts: list[bytes]) -> bytearray:
    """One media segment of several: the first part's ``styp``, then every
    part's fragments. Segment indexes (``sidx``) go: each indexed only its
    own part."""
    joined = bytearray()
    for number, part in enumerate(parts):
        for box in _top_level(part):
            if box.kind == b"sidx" or (box.kind == b"styp" and number):
                continue
            joined += part[box.start : box.end]
    return joined


def shift_fragments(segment: bytearray, *, ticks: int, first_sequence: int) -> int:
    """Move every fragment of a media segment by ``ticks`` of the track's
    timescale and number them from ``first_sequence``, in place; returns the
    next sequence number."""
    if ticks < 0:
        raise ValueError("fragments only move forward")
    sequence = first_sequence
    found = 0
    for box in boxes(segment):
        if box.kind == b"tfdt":
            _add_versioned(segment, box.payload, 4, ticks, "tfdt")
            found += 1
        elif box.kind == b"sidx":
            # version/flags, reference_ID, timescale, then the earliest time.
            _add_versioned(segment, box.payload, 12, ticks, "sidx")
        elif box.kind == b"mfhd":
            struct.pack_into(">I", segment, box.payload + 4, sequence)
            sequence += 1
    if not found:
        raise Fmp4Error("no tfdt box: not a media segment")
    return sequence


def _top_level(data: bytes) -> Iterator[Box]:
    depth_end = 0
    for box in boxes(data):
        if box.start >= depth_end:
            depth_end = box.end
            yield box


def _add_versioned(
    data: bytearray, payload: int, field_at: int, amount: int, name: str
) -> None:
    """Add ``amount`` to a 32-bit (version 0) or 64-bit (version 1) time
    ``field_at`` bytes into a full box's payload."""
    version = data[payload]
    offset = payload + field_at
    if version == 1:
        (old,) = struct.unpack_from(">Q", data, offset)
        struct.pack_into(">Q", data, offset, old + amount)
        return
    (old,) = struct.unpack_from(">I", data, offset)
    if old + amount >= 2**32:
        raise Fmp4Error(f"a version 0 {name} cannot hold time {old + amount}")
    struct.pack_into(">I", data, offset, old + amount)


def avc_codec(init_segment: bytes) -> str | None:
    """The RFC 6381 ``avc1.PPCCLL`` string from an init segment's avcC box
    (profile, constraint flags, level), or None when there is none."""
    at = init_segment.find(b"avcC")
    if at < 0 or len(init_segment) < at + 8:
        return None
    profile, constraints, level = init_segment[at + 5 : at + 8]
    return f"avc1.{profile:02x}{constraints:02x}{level:02x}"


def hevc_codec(init_segment: bytes) -> str | None:
    """The RFC 6381 string of an init segment's HEVC track, from its hvcC box
    as ISO/IEC 14496-15 annex E spells it (``hvc1.2.4.L93.B0``: profile,
    compatibility flags bit-reversed, tier and level, then the constraint
    bytes without trailing zeros), or None when there is none."""
    at = init_segment.find(b"hvcC")
    if at < 0 or len(init_segment) < at + 17:
        return None
    entry = b"hev1" if b"hev1" in init_segment[:at] else b"hvc1"
    record = init_segment[at + 4 : at + 17]
    space, tier, profile = record[1] >> 6, (record[1] >> 5) & 1, record[1] & 0x1F
    (compatibility,) = struct.unpack_from(">I", record, 2)
    reversed_flags = int(f"{compatibility:032b}"[::-1], 2)
    constraints = list(record[6:12])
    while constraints and not constraints[-1]:
        constraints.pop()
    parts = [
        entry.decode(),
        ("", "A", "B", "C")[space] + str(profile),
        f"{reversed_flags:X}",
        ("L", "H")[tier] + str(record[12]),
        *(f"{byte:X}" for byte in constraints),
    ]
    return ".".join(parts)


def video_codec(init_segment: bytes) -> str | None:
    """The RFC 6381 string of an init segment's H.264 or HEVC track."""
    return avc_codec(init_segment) or hevc_codec(init_segment)


def content_name(data: bytes, stem: str = "init", suffix: str = ".mp4") -> str:
    """A name that changes with the content: ``init-1a2b3c4d5e6f.mp4``."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}{suffix}"
