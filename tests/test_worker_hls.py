"""The published playlists, and the fragmented-MP4 boxes a chunk's segments
are moved and joined by."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from vod.languages import bcp47
from worker import fmp4
from worker.hls import (
    AudioRendition,
    MediaPlaylist,
    Rates,
    Segment,
    Variant,
    audio_name,
    audio_names,
    estimated_rates,
    iframe_rates,
    master_playlist,
    media_playlist,
    rates,
)

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init_1.mp4"
#EXTINF:6.000000,
seg_00000.m4s
#EXTINF:2.000000,
seg_00001.m4s
#EXT-X-ENDLIST
"""


def test_ffmpegs_playlist_is_read_for_its_init_and_timed_segments():
    playlist = MediaPlaylist.parse(FFMPEG_PLAYLIST)
    assert playlist.init == "init_1.mp4"
    assert playlist.segments == (("seg_00000.m4s", 6.0), ("seg_00001.m4s", 2.0))
    assert playlist.duration == 8.0


SEGMENTS = [
    Segment("seg_00000.m4s", 6.006, "init-a.mp4"),
    Segment("seg_00001.m4s", 6.006, "init-a.mp4"),
    Segment("seg_00002.m4s", 1.5, "init-b.mp4"),
]


def test_a_growing_playlist_is_an_event_playlist_that_starts_at_the_beginning():
    text = media_playlist(SEGMENTS[:2], complete=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    assert "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES" in text
    assert "#EXT-X-ENDLIST" not in text
    assert "#EXT-X-TARGETDURATION:6" in text
    assert MediaPlaylist.parse(text).segments == (
        ("seg_00000.m4s", 6.006),
        ("seg_00001.m4s", 6.006),
    )


def test_the_final_playlist_is_vod_and_names_an_init_wherever_it_changes():
    text = media_playlist(SEGMENTS, complete=True)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert "#EXT-X-START" not in text
    assert "#EXT-X-DISCONTINUITY" not in text
    maps = [line for line in text.splitlines() if line.startswith("#EXT-X-MAP")]
    assert maps == ['#EXT-X-MAP:URI="init-a.mp4"', '#EXT-X-MAP:URI="init-b.mp4"']
    assert text.index("init-b.mp4") < text.index("seg_00002.m4s")


def test_rates_are_the_average_and_the_peak_segment():
    measured = rates([750_000, 250_000], [6.0, 2.0])
    assert measured == Rates(average=1_000_000, peak=1_000_000)
    assert rates([600_000, 300_000], [6.0, 2.0]) == Rates(900_000, 1_200_000)
    with pytest.raises(ValueError, match="no media"):
        rates([], [])


VARIANTS = [
    Variant(
        "720p", 1280, 720, "avc1.64001f", 29.97, Rates(2_000_000, 2_900_000), 3_000_000
    ),
    Variant("360p", 640, 360, "avc1.64001e", 29.97, None, 800_000),
]


def stream_infs(text):
    lines = text.splitlines()
    return {
        lines[i + 1]: line.split(":", 1)[1]
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    }


def test_the_master_lists_every_rung_with_what_apple_requires_and_one_audio_group():
    text = master_playlist(
        VARIANTS, audio=[AudioRendition("audio", "de", Rates(128_000, 131_000))]
    )
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
    assert (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="de",'
        'NAME="Deutsch",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"'
    ) in text
    infs = stream_infs(text)
    assert list(infs) == ["720p/index.m3u8", "360p/index.m3u8"]
    assert infs["720p/index.m3u8"] == (
        "BANDWIDTH=3031000,AVERAGE-BANDWIDTH=2128000,"
        'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,'
        'VIDEO-RANGE=SDR,CLOSED-CAPTIONS=NONE,AUDIO="group_audio"'
    )
    # Not measured yet: the cap (plus a tenth for BANDWIDTH) stands in.
    assert infs["360p/index.m3u8"].startswith(
        "BANDWIDTH=1011000,AVERAGE-BANDWIDTH=928000,"
    )
    assert estimated_rates(800_000) == Rates(800_000, 880_000)


def test_an_i_frame_playlist_lists_each_keyframe_as_a_byte_range():
    frames = [
        Segment("seg_00000.m4s", 2.0, "init-a.mp4", (4770, 24)),
        Segment("seg_00000.m4s", 2.0, "init-a.mp4", (5847, 37233)),
    ]
    text = media_playlist(frames, complete=True, iframes_only=True)
    assert "#EXT-X-I-FRAMES-ONLY\n" in text
    assert text.endswith(
        '#EXT-X-MAP:URI="init-a.mp4"\n'
        "#EXTINF:2.000000,\n#EXT-X-BYTERANGE:4770@24\nseg_00000.m4s\n"
        "#EXTINF:2.000000,\n#EXT-X-BYTERANGE:5847@37233\nseg_00000.m4s\n"
        "#EXT-X-ENDLIST\n"
    )
    assert iframe_rates(frames) == Rates(average=21234, peak=23388)


def test_the_final_master_lists_each_rungs_i_frame_playlist():
    measured = dataclasses.replace(VARIANTS[0], iframe_rates=Rates(40_000, 60_000))
    text = master_playlist([measured, VARIANTS[1]], audio=[])
    iframes = [line for line in text.splitlines() if "I-FRAME" in line]
    assert iframes == [
        "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=60000,AVERAGE-BANDWIDTH=40000,"
        'CODECS="avc1.64001f",RESOLUTION=1280x720,VIDEO-RANGE=SDR,'
        'URI="720p/iframes.m3u8"'
    ]


@pytest.mark.parametrize(
    ("tag", "language", "name"),
    [
        ("eng", "en", "English"),
        ("ger", "de", "Deutsch"),
        ("fra", "fr", "Français"),
        ("yue", "yue", "yue"),
        ("pt-BR", "pt-br", "Português"),
        (None, "und", "Original audio"),
        ("", "und", "Original audio"),
        ("english!", "und", "Original audio"),
    ],
)
def test_the_audio_rendition_says_its_language_as_bcp_47(tag, language, name):
    assert bcp47(tag) == language
    assert audio_name(language) == name


def test_every_audio_track_is_a_rendition_of_the_group_the_first_the_default():
    text = master_playlist(
        VARIANTS,
        audio=[
            AudioRendition("audio", "en", Rates(128_000, 131_000)),
            AudioRendition("audio2", "fr", Rates(127_000, 140_000)),
        ],
    )
    assert (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="en",'
        'NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"\n'
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="fr",'
        'NAME="Français",DEFAULT=NO,AUTOSELECT=YES,URI="audio2/index.m3u8"\n'
    ) in text
    # A variant plays with either track: its rates count the larger.
    assert stream_infs(text)["720p/index.m3u8"].startswith(
        "BANDWIDTH=3040000,AVERAGE-BANDWIDTH=2128000,"
    )


def test_tracks_of_one_language_get_distinct_names():
    assert audio_names(["en", "und", "en", "en-us", "und"]) == [
        "English",
        "Original audio",
        "English 2",
        "English 3",
        "Original audio 2",
    ]


def test_a_master_without_audio_has_video_only_variants():
    text = master_playlist(VARIANTS)
    assert "#EXT-X-MEDIA" not in text
    for attributes in stream_infs(text).values():
        assert "mp4a" not in attributes
        assert "AUDIO=" not in attributes


# --- fMP4 ---------------------------------------------------------------------


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def fragment(sequence: int, decode_time: int, *, version: int = 1) -> bytes:
    mfhd = box(b"mfhd", b"\x00\x00\x00\x00" + struct.pack(">I", sequence))
    time_field = struct.pack(">Q" if version else ">I", decode_time)
    tfdt = box(b"tfdt", bytes([version, 0, 0, 0]) + time_field)
    traf = box(b"traf", box(b"tfhd", b"\x00" * 8) + tfdt)
    return box(b"moof", mfhd + traf) + box(b"mdat", b"frames")


def segment(sequence: int, decode_time: int) -> bytes:
    sidx = box(
        b"sidx", b"\x01\x00\x00\x00" + b"\x00" * 8 + struct.pack(">Q", decode_time)
    )
    return box(b"styp", b"msdh") + sidx + fragment(sequence, decode_time)


def decode_times(data):
    return [
        struct.unpack_from(">Q", data, b.payload + 4)[0]
        for b in fmp4.boxes(data)
        if b.kind == b"tfdt"
    ]


def sequences(data):
    return [
        struct.unpack_from(">I", data, b.payload + 4)[0]
        for b in fmp4.boxes(data)
        if b.kind == b"mfhd"
    ]


def test_gop_segments_join_into_one_segment_with_one_styp_and_no_index():
    joined = fmp4.join_segments([segment(1, 0), segment(2, 1024), segment(3, 2048)])
    kinds = [
        b.kind for b in fmp4.boxes(joined) if b.kind in (b"styp", b"sidx", b"moof")
    ]
    assert kinds == [b"styp", b"moof", b"moof", b"moof"]
    assert fmp4.fragment_count(bytes(joined)) == 3


def test_fragments_move_by_the_chunk_start():
    data = fmp4.join_segments([segment(2, 1024), segment(3, 2048)])
    fmp4.shift_fragments(data, ticks=90_000)
    assert decode_times(data) == [91_024, 92_048]


NON_SYNC = 0x01010000


def video_segment(sizes, keyframes, *, decode_time=5000):
    """A segment as ffmpeg's one run writes it: one fragment whose track run
    gives the data offset and each sample's size and flags, durations from
    the ``tfhd`` default."""
    tfhd = box(b"tfhd", struct.pack(">IIII", 0x020028, 1, 512, NON_SYNC))
    tfdt = box(b"tfdt", b"\x01\x00\x00\x00" + struct.pack(">Q", decode_time))
    flags = [0x02000000 if i in keyframes else NON_SYNC for i in range(len(sizes))]
    entries = b"".join(
        struct.pack(">II", size, flag) for size, flag in zip(sizes, flags, strict=True)
    )
    trun_payload = struct.pack(">IIi", 0x000601, len(sizes), 0) + entries
    traf = box(b"traf", tfhd + tfdt + box(b"trun", trun_payload))
    moof = bytearray(box(b"moof", box(b"mfhd", struct.pack(">II", 0, 1)) + traf))
    struct.pack_into(">i", moof, len(moof) - len(entries) - 4, len(moof) + 8)
    data = b"".join(bytes([i]) * size for i, size in enumerate(sizes))
    return box(b"styp", b"msdh") + bytes(moof) + box(b"mdat", data)


def test_a_fragment_of_three_gops_is_cut_into_one_fragment_per_gop():
    sizes = [50, 10, 11, 40, 12, 45, 13]
    original = video_segment(sizes, {0, 3, 5})
    split = fmp4.split_gops(original, first_sequence=7)
    assert sequences(split) == [7, 8, 9]
    assert decode_times(split) == [5000, 5000 + 3 * 512, 5000 + 5 * 512]
    fragments = fmp4.fragments(split)
    assert [[s.size for s in f.samples] for f in fragments] == [
        [50, 10, 11],
        [40, 12],
        [45, 13],
    ]
    assert [s.sync for f in fragments for s in f.samples] == [
        True,
        False,
        False,
        True,
        False,
        True,
        False,
    ]
    # Every sample's bytes are where its run says.
    for fragment in fragments:
        at = fragment.data
        for sample in fragment.samples:
            assert len(set(split[at : at + sample.size])) == 1
            at += sample.size
    keyframes = fmp4.keyframes(split)
    assert [k.ticks for k in keyframes] == [3 * 512, 2 * 512, 2 * 512]
    for keyframe, fragment in zip(keyframes, fragments, strict=True):
        assert split[keyframe.offset + 4 : keyframe.offset + 8] == b"moof"
        end = keyframe.offset + keyframe.length
        assert end == fragment.data + fragment.samples[0].size
    assert fmp4.split_gops(split, first_sequence=7) == split


def test_a_fragment_that_does_not_start_on_a_keyframe_is_refused():
    with pytest.raises(fmp4.Fmp4Error, match="without a keyframe"):
        fmp4.split_gops(video_segment([10, 10], {1}), first_sequence=1)
    with pytest.raises(fmp4.Fmp4Error, match="unsupported fragment layout"):
        fmp4.split_gops(segment(1, 0), first_sequence=1)


def test_a_32_bit_decode_time_that_would_overflow_is_refused():
    data = bytearray(fragment(1, 2**32 - 10, version=0))
    with pytest.raises(fmp4.Fmp4Error, match="version 0 tfdt"):
        fmp4.shift_fragments(data, ticks=100)


def test_something_that_is_not_a_segment_is_refused():
    with pytest.raises(fmp4.Fmp4Error, match="no tfdt"):
        fmp4.shift_fragments(bytearray(box(b"free", b"")), ticks=0)
    with pytest.raises(fmp4.Fmp4Error, match="bad size"):
        list(fmp4.boxes(b"\x00\x00\x00\x40moof"))


def test_timescale_and_codec_come_from_the_init_segment():
    mdhd = box(b"mdhd", b"\x00\x00\x00\x00" + b"\x00" * 8 + struct.pack(">I", 15360))
    avcc = box(b"avcC", bytes([1, 0x64, 0x00, 0x1F]) + b"\xff")
    init = box(b"moov", box(b"trak", box(b"mdia", mdhd)) + avcc)
    assert fmp4.timescale(init) == 15360
    assert fmp4.avc_codec(init) == "avc1.64001f"
    assert fmp4.avc_codec(b"no codec here") is None
    assert fmp4.content_name(init) == fmp4.content_name(bytes(init))
    assert fmp4.content_name(init) != fmp4.content_name(init + b"x")
