"""The few fragmented-MP4 facts the worker needs, read and rewritten.

A chunk is encoded on its own, one fragment per GOP, so its fragments start
at time 0. Joined into one rendition they must carry the rendition's time:
each fragment's decode time (``tfdt``) moves by the chunk's start, in place;
three GOPs' fragments make one media segment. With
x264's ``stitchable`` option every chunk's init segment is the same, and
the first chunk's plays them all.

ffmpeg's one-run segments hold three GOPs in one fragment; a player can only
fetch a fragment's first keyframe on its own. ``split_gops`` rewrites every
segment as one fragment per GOP, so that each keyframe is a byte range from
its fragment's ``moof`` to the end of its sample (``keyframes``): the
entries of an I-frame playlist.
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


def fragment_count(segment: bytes | bytearray) -> int:
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


def shift_fragments(segment: bytearray, *, ticks: int) -> None:
    """Move every fragment of a media segment by ``ticks`` of the track's
    timescale, in place."""
    if ticks < 0:
        raise ValueError("fragments only move forward")
    found = 0
    for box in boxes(segment):
        if box.kind == b"tfdt":
            _add_versioned(segment, box.payload, 4, ticks, "tfdt")
            found += 1
        elif box.kind == b"sidx":
            # version/flags, reference_ID, timescale, then the earliest time.
            _add_versioned(segment, box.payload, 12, ticks, "sidx")
    if not found:
        raise Fmp4Error("no tfdt box: not a media segment")


#: ``tfhd`` flags: the base of data offsets is the moof (what ffmpeg
#: writes), and which defaults follow the track ID, in order, with their
#: sizes.
_DEFAULT_BASE_IS_MOOF = 0x020000
_TFHD_FIELDS = ((0x01, 8), (0x02, 4), (0x08, 4), (0x10, 4), (0x20, 4))
#: ``trun`` flags: data offset, first sample's flags, then per sample
#: duration, size, flags and composition offset.
_DATA_OFFSET, _FIRST_FLAGS = 0x001, 0x004
_COMPOSITION_OFFSET = 0x800
_SAMPLE_FIELDS = (0x100, 0x200, 0x400, _COMPOSITION_OFFSET)
#: ``sample_is_non_sync_sample`` in a sample's flags.
_NON_SYNC = 0x010000


@dataclasses.dataclass(frozen=True)
class Sample:
    duration: int
    size: int
    flags: int
    composition_offset: int

    @property
    def sync(self) -> bool:
        return not self.flags & _NON_SYNC


@dataclasses.dataclass(frozen=True)
class Fragment:
    """One ``moof`` (with one track run) and the samples it describes."""

    start: int
    #: Where its samples' data starts, and where its ``mdat`` ends.
    data: int
    end: int
    decode_time: int
    samples: tuple[Sample, ...]
    #: The ``tfhd`` box, copied as it is into every fragment split off.
    tfhd: bytes
    trun_version: int


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """An I-frame's byte range in its segment and its time to the next."""

    offset: int
    length: int
    ticks: int


def fragments(segment: bytes | bytearray) -> list[Fragment]:
    """Every fragment of a media segment; raises Fmp4Error for a layout
    other than ffmpeg's (one track run per fragment, data in the ``mdat``
    that follows, offsets from the ``moof``)."""
    found = []
    top = list(_top_level(segment))
    for number, box in enumerate(top):
        if box.kind != b"moof":
            continue
        mdat = top[number + 1] if number + 1 < len(top) else None
        if mdat is None or mdat.kind != b"mdat":
            raise Fmp4Error(f"the moof at byte {box.start} has no mdat after it")
        found.append(_fragment(segment, box, mdat))
    if not found:
        raise Fmp4Error("no moof box: not a media segment")
    return found


def _fragment(data: bytes | bytearray, moof: Box, mdat: Box) -> Fragment:
    kinds = [b.kind for b in boxes(data, moof.payload, moof.end)]
    if sorted(kinds) != [b"mfhd", b"tfdt", b"tfhd", b"traf", b"trun"]:
        names = [k.decode(errors="replace") for k in kinds]
        raise Fmp4Error(f"unsupported fragment layout {names}")
    inner = {b.kind: b for b in boxes(data, moof.payload, moof.end)}
    tfhd, tfdt, trun = inner[b"tfhd"], inner[b"tfdt"], inner[b"trun"]
    (tf_flags,) = struct.unpack_from(">I", data, tfhd.payload)
    if not tf_flags & _DEFAULT_BASE_IS_MOOF or tf_flags & 0x01:
        raise Fmp4Error("fragment data is not addressed from its moof")
    defaults = {}
    at = tfhd.payload + 8
    for flag, size in _TFHD_FIELDS:
        if tf_flags & flag:
            defaults[flag] = int.from_bytes(data[at : at + size], "big")
            at += size
    version = data[tfdt.payload]
    decode_time = int.from_bytes(
        data[tfdt.payload + 4 : tfdt.payload + (12 if version == 1 else 8)], "big"
    )
    run_version = data[trun.payload]
    (run_flags, count) = struct.unpack_from(">II", data, trun.payload)
    run_flags &= 0xFFFFFF
    at = trun.payload + 8
    if not run_flags & _DATA_OFFSET:
        raise Fmp4Error("a track run without a data offset")
    (offset,) = struct.unpack_from(">i", data, at)
    at += 4
    first_flags = None
    if run_flags & _FIRST_FLAGS:
        (first_flags,) = struct.unpack_from(">I", data, at)
        at += 4
    samples = []
    for index in range(count):
        values = []
        for flag in _SAMPLE_FIELDS:
            if run_flags & flag:
                signed = flag == _COMPOSITION_OFFSET and run_version == 1
                (value,) = struct.unpack_from(">i" if signed else ">I", data, at)
                values.append(value)
                at += 4
            else:
                values.append(None)
        duration, size, flags, composition = values
        if flags is None and index == 0:
            flags = first_flags
        samples.append(
            Sample(
                duration=_given(duration, defaults.get(0x08), "duration"),
                size=_given(size, defaults.get(0x10), "size"),
                flags=_given(flags, defaults.get(0x20), "flags"),
                composition_offset=composition or 0,
            )
        )
    start = moof.start + offset
    if start != mdat.payload or start + sum(s.size for s in samples) != mdat.end:
        raise Fmp4Error(f"the mdat at byte {mdat.start} is not the moof's samples")
    return Fragment(
        start=moof.start,
        data=start,
        end=mdat.end,
        decode_time=decode_time,
        samples=tuple(samples),
        tfhd=bytes(data[tfhd.start : tfhd.end]),
        trun_version=run_version,
    )


def _given(value: int | None, default: int | None, name: str) -> int:
    if value is not None:
        return value
    if default is None:
        raise Fmp4Error(f"a sample has no {name} and the fragment no default")
    return default


def split_gops(segment: bytes | bytearray, *, first_sequence: int) -> bytearray:
    """The media segment with every fragment cut before each keyframe, so
    that each GOP is a ``moof`` and ``mdat`` of its own, numbered from
    ``first_sequence``. The samples, their times and their data are the
    same; a segment index (``sidx``) goes, as in ``join_segments``."""
    split = bytearray()
    sequence = first_sequence
    runs = {f.start: f for f in fragments(segment)}
    for box in _top_level(segment):
        if box.kind in (b"sidx", b"mdat"):
            continue
        fragment = runs.get(box.start)
        if fragment is None:
            split += segment[box.start : box.end]
            continue
        if not fragment.samples[0].sync:
            raise Fmp4Error(
                f"the fragment at byte {box.start} starts without a keyframe"
            )
        data_at, time = fragment.data, fragment.decode_time
        group: list[Sample] = []
        for sample in [*fragment.samples, None]:
            if group and (sample is None or sample.sync):
                size = sum(s.size for s in group)
                split += _gop_fragment(
                    fragment, group, sequence, time, segment[data_at : data_at + size]
                )
                sequence += 1
                data_at += size
                time += sum(s.duration for s in group)
                group = []
            if sample is not None:
                group.append(sample)
    return split


def _gop_fragment(
    fragment: Fragment,
    samples: list[Sample],
    sequence: int,
    time: int,
    data: bytes | bytearray,
) -> bytes:
    """``moof`` and ``mdat`` of ``samples``, every sample's fields explicit."""
    flags = _DATA_OFFSET | sum(_SAMPLE_FIELDS)
    cto = ">i" if fragment.trun_version == 1 else ">I"
    entries = b"".join(
        struct.pack(">III", s.duration, s.size, s.flags)
        + struct.pack(cto, s.composition_offset)
        for s in samples
    )
    trun_size = 8 + 12 + len(entries)
    traf = (
        fragment.tfhd
        # Version 1: a 64-bit decode time.
        + _box(b"tfdt", struct.pack(">IQ", 1 << 24, time))
        + _box(
            b"trun",
            struct.pack(">II", fragment.trun_version << 24 | flags, len(samples))
            + b"\0\0\0\0"
            + entries,
        )
    )
    moof_size = 8 + 16 + 8 + len(traf)
    offset_at = moof_size - trun_size + 16
    moof = bytearray(
        _box(
            b"moof",
            _box(b"mfhd", struct.pack(">II", 0, sequence)) + _box(b"traf", traf),
        )
    )
    struct.pack_into(">i", moof, offset_at, moof_size + 8)
    return bytes(moof) + _box(b"mdat", data)


def _box(kind: bytes, payload: bytes | bytearray) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def keyframes(segment: bytes | bytearray) -> list[Keyframe]:
    """The I-frame of each fragment of a ``split_gops`` segment: from its
    ``moof`` to the end of its first sample, lasting the fragment."""
    found = []
    for fragment in fragments(segment):
        first = fragment.samples[0]
        if not first.sync:
            raise Fmp4Error(f"the fragment at byte {fragment.start} is not a GOP")
        found.append(
            Keyframe(
                offset=fragment.start,
                length=fragment.data + first.size - fragment.start,
                ticks=sum(s.duration for s in fragment.samples),
            )
        )
    return found


def _top_level(data: bytes | bytearray) -> Iterator[Box]:
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
