"""Finishing the master playlist from measured segments."""

from __future__ import annotations

import pytest

from worker.hls import (
    MediaPlaylist,
    Rates,
    VariantFacts,
    avc_codec,
    finish_master,
    measure,
    parse_attributes,
)

#: What ffmpeg 5.1 writes for one rung with an audio group.
FFMPEG_MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",NAME="audio_0",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=140800,CODECS="mp4a.40.2",AUDIO="group_audio"
audio/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=1020800,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="group_audio"
360p/index.m3u8
"""

VARIANT = """#EXTM3U
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


def facts(peak=900_000, average=700_000, codecs="avc1.64001e,mp4a.40.2"):
    return VariantFacts(Rates(average, peak), 640, 360, codecs, 29.97002997)


def stream_inf(master, uri):
    lines = master.splitlines()
    return parse_attributes(lines[lines.index(uri) - 1].split(":", 1)[1])


def test_media_playlist_lists_init_and_timed_segments():
    playlist = MediaPlaylist.parse(VARIANT)
    assert playlist.init == "init_1.mp4"
    assert playlist.segments == (("seg_00000.m4s", 6.0), ("seg_00001.m4s", 2.0))


def test_measure_gives_average_and_peak_segment_rates(tmp_path):
    (tmp_path / "seg_00000.m4s").write_bytes(b"x" * 600_000)
    (tmp_path / "seg_00001.m4s").write_bytes(b"x" * 300_000)
    rates = measure(MediaPlaylist.parse(VARIANT), tmp_path)
    assert rates.average == 900_000
    assert rates.peak == 1_200_000
    assert rates + Rates(128_000, 130_000) == Rates(1_028_000, 1_330_000)


def test_finish_adds_what_ffmpeg_omits_and_keeps_what_it_wrote():
    master = finish_master(FFMPEG_MASTER, {"360p/index.m3u8": facts()})
    attributes = stream_inf(master, "360p/index.m3u8")
    assert attributes["AVERAGE-BANDWIDTH"] == "700000"
    assert attributes["FRAME-RATE"] == "29.970"
    assert attributes["RESOLUTION"] == "640x360"
    assert attributes["CODECS"] == '"avc1.64001e,mp4a.40.2"'
    assert attributes["AUDIO"] == '"group_audio"'
    assert attributes["BANDWIDTH"] == "1020800"
    assert master.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO")


def test_finish_raises_bandwidth_to_the_measured_peak():
    master = finish_master(FFMPEG_MASTER, {"360p/index.m3u8": facts(peak=1_500_000)})
    assert stream_inf(master, "360p/index.m3u8")["BANDWIDTH"] == "1500000"


def test_finish_fills_codecs_and_resolution_when_missing():
    bare = FFMPEG_MASTER.replace(
        'RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",', ""
    )
    master = finish_master(
        bare, {"360p/index.m3u8": facts(codecs="avc1.4d401e,mp4a.40.2")}
    )
    attributes = stream_inf(master, "360p/index.m3u8")
    assert attributes["CODECS"] == '"avc1.4d401e,mp4a.40.2"'
    assert attributes["RESOLUTION"] == "640x360"


def test_finish_drops_the_audio_only_variant():
    master = finish_master(FFMPEG_MASTER, {"360p/index.m3u8": facts()})
    assert master.count("#EXT-X-STREAM-INF") == 1
    assert 'URI="audio/index.m3u8"' in master


def test_finish_refuses_a_master_without_a_produced_variant():
    with pytest.raises(ValueError, match="720p"):
        finish_master(FFMPEG_MASTER, {"720p/index.m3u8": facts()})


def test_avc_codec_reads_profile_constraints_and_level_from_avcc():
    init = (
        b"\x00\x00\x00\x30avc1"
        + b"\x00" * 20
        + b"\x00\x00\x00\x2aavcC\x01\x64\x00\x1f\xff"
    )
    assert avc_codec(init) == "avc1.64001f"
    assert avc_codec(b"\x00\x00\x00\x10mp4a") is None
