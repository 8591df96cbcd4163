"""HDR sources: the probe tells PQ and HLG from SDR; both the one-run and
the chunked path tone-map them to 8-bit BT.709 rungs about as bright as the
same picture made in SDR; the hdrLadder setting adds HEVC Main 10 rungs in
the source's range, listed with their VIDEO-RANGE, and the output still
conforms to Apple's HLS authoring spec. Real ffmpeg on tiny HEVC clips."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest

from tests.hls_conformance import check_vod_with_ffprobe
from tests.test_worker_chunks import _read, download
from tests.test_worker_e2e import stream_infs
from tests.worker_support import (
    HDR10_SOURCE,
    SDR_PICTURE,
    SMALL_LADDER,
    Stack,
    hdr_clip,
    picture_means,
    probe_json,
)
from vod.ladder import DynamicRange, Source, Variant, hdr_variants
from vod.model import Status
from vod.plan import Mode, TranscodePlan, plan_chunks
from worker.encode import single_command
from worker.hls import MediaPlaylist
from worker.jobs import plan_transcode
from worker.probe import Media, describe

HLG = "arib-std-b67"
PQ = "smpte2084"
#: The one-run source: one rung (108p, below every small rung) and its HDR
#: twin. The chunked one: 7 s, so a first chunk of one segment and a second.
SINGLE_CLIP = {"size": "192x108", "rate": 10, "seconds": 1}
CHUNKED_CLIP = {"size": "160x90", "rate": 5, "seconds": 7}
#: A tone-mapped rung's mean luma may differ this much from the SDR
#: picture's (Hable's curve is 17 % darker, Mobius within 2 %), and its mean
#: saturation must keep this share of the SDR picture's: HDR code values
#: shown as they are keep about a third of it (washed out), Mobius 88 %.
LUMA_TOLERANCE = 0.15
SATURATION_KEPT = 0.75


@dataclasses.dataclass
class Encoded:
    stack: Stack
    video_id: str
    folder: Path
    clip: dict[str, object]


def encode(stack: Stack, base: Path, transfer: str, clip, **settings) -> Encoded:
    """One video through the worker, to READY, with the HDR ladder on."""
    video_id = stack.queue_video(hdr_clip(transfer, **clip))
    worker = stack.worker(base / "work", hdr_ladder=True, **settings)
    while worker.poll_once(wait_seconds=0):
        pass
    record = stack.repository.get(video_id)
    assert record is not None
    assert record.status is Status.READY
    return Encoded(stack, video_id, download(stack, video_id, base / "out"), clip)


@pytest.fixture(scope="module")
def stack(moto) -> Stack:
    return Stack(moto)


@pytest.fixture(scope="module")
def single(stack, tmp_path_factory) -> Encoded:
    base = tmp_path_factory.mktemp("hdr-single")
    return encode(stack, base, HLG, SINGLE_CLIP)


@pytest.fixture(scope="module")
def chunked(stack, tmp_path_factory) -> Encoded:
    base = tmp_path_factory.mktemp("hdr-chunked")
    return encode(stack, base, PQ, CHUNKED_CLIP, chunk_seconds=6)


def rung(encoded: Encoded, name: str) -> Path:
    """A published rung's init and segments joined into one file."""
    folder = encoded.folder / name
    playlist = MediaPlaylist.parse((folder / "index.m3u8").read_text())
    parts = [playlist.init, *(uri for uri, _ in playlist.segments)]
    joined = encoded.folder / f"{name}.mp4"
    joined.write_bytes(b"".join((folder / str(p)).read_bytes() for p in parts))
    return joined


def video_stream(path: Path) -> dict[str, str]:
    streams = probe_json(path, "-show_streams")["streams"]
    return {key: str(value) for key, value in streams[0].items()}


@pytest.mark.parametrize(
    ("kind", "sdr", "hdr", "video_range", "transfer"),
    [
        ("single", "108p", "108p-hdr", "HLG", HLG),
        ("chunked", "90p", "90p-hdr", "PQ", PQ),
    ],
)
def test_hdr_is_tone_mapped_to_bt709_sdr_beside_an_hevc_hdr_ladder(
    request, kind, sdr, hdr, video_range, transfer
):
    encoded = request.getfixturevalue(kind)
    tone_mapped = rung(encoded, sdr)
    stream = video_stream(tone_mapped)
    assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
    assert (
        stream["color_primaries"],
        stream["color_transfer"],
        stream["color_space"],
    ) == ("bt709", "bt709", "bt709")
    clip = encoded.clip
    picture = (
        f"testsrc2=size={clip['size']}:rate={clip['rate']}:duration={clip['seconds']}"
    )
    luma, saturation = picture_means(tone_mapped)
    reference = picture_means(picture, lavfi=True, video_filter=SDR_PICTURE)
    assert luma == pytest.approx(reference[0], rel=LUMA_TOLERANCE)
    assert saturation > SATURATION_KEPT * reference[1]

    kept = video_stream(rung(encoded, hdr))
    assert (kept["codec_name"], kept["profile"], kept["codec_tag_string"]) == (
        "hevc",
        "Main 10",
        "hvc1",
    )
    assert (kept["pix_fmt"], kept["color_primaries"], kept["color_transfer"]) == (
        "yuv420p10le",
        "bt2020",
        transfer,
    )

    if video_range == "PQ":
        (frame,) = probe_json(
            rung(encoded, hdr), "-read_intervals", "%+#1", "-show_frames"
        )["frames"]
        sides = {side["side_data_type"]: side for side in frame["side_data_list"]}
        display = sides["Mastering display metadata"]
        assert (display["max_luminance"], display["green_x"]) == (
            "10000000/10000",
            "13250/50000",
        )
        light = sides["Content light level metadata"]
        assert (light["max_content"], light["max_average"]) == (1000, 400)

    master = (encoded.folder / "master.m3u8").read_text()
    infs = stream_infs(master)
    assert infs[f"{sdr}/index.m3u8"]["VIDEO-RANGE"] == "SDR"
    assert infs[f"{hdr}/index.m3u8"]["VIDEO-RANGE"] == video_range
    assert infs[f"{hdr}/index.m3u8"]["CODECS"].startswith('"hvc1.2.4.L')
    # The SDR ladder first: a player that skips what it cannot show starts
    # on an SDR variant.
    assert list(infs) == [f"{sdr}/index.m3u8", f"{hdr}/index.m3u8"]
    check_vod_with_ffprobe((encoded.folder / "master.m3u8").as_uri(), _read)


def test_wide_gamut_sdr_is_taken_to_bt709_and_tagged_so(stack, tmp_path):
    encoded = encode(stack, tmp_path, "bt709", SINGLE_CLIP)
    converted = rung(encoded, "108p")
    stream = video_stream(converted)
    assert (
        stream["color_primaries"],
        stream["color_transfer"],
        stream["color_space"],
    ) == ("bt709", "bt709", "bt709")
    picture = "testsrc2=size=192x108:rate=10:duration=1"
    luma, saturation = picture_means(converted)
    reference = picture_means(picture, lavfi=True, video_filter=SDR_PICTURE)
    # BT.2020 code values shown as BT.709 are 24 % too bright and keep 54 %
    # of the saturation; converted, within 3 % and 93 %.
    assert luma == pytest.approx(reference[0], rel=0.08)
    assert saturation > 0.85 * reference[1]
    assert not (encoded.folder / "108p-hdr").exists()


def test_the_record_lists_the_hdr_rendition_with_its_codec(single):
    record = single.stack.repository.get(single.video_id)
    codecs = {r.name: r.codecs for r in record.renditions}
    assert codecs["108p"].startswith("avc1.")
    assert codecs["108p-hdr"].startswith("hvc1.2.4.L")
    # Each against its own reference: tone-mapped 8-bit, or the 10-bit HDR
    # picture (its errors stated on the 8-bit scale).
    scores = {r.name: r.psnr for r in record.renditions}
    assert all(30 < score < 70 for score in scores.values()), scores


def video(**overrides) -> dict[str, object]:
    stream: dict[str, object] = {
        "codec_type": "video",
        "width": 3840,
        "height": 2160,
        "r_frame_rate": "30/1",
        "avg_frame_rate": "30/1",
        "duration": "10",
        "pix_fmt": "yuv420p",
    }
    stream.update(overrides)
    return stream


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (DynamicRange.SDR, 8)),
        (
            {
                "color_transfer": "arib-std-b67",
                "color_primaries": "bt2020",
                "pix_fmt": "yuv420p10le",
            },
            (DynamicRange.HLG, 10),
        ),
        (
            {"color_transfer": "smpte2084", "bits_per_raw_sample": "12"},
            (DynamicRange.PQ, 12),
        ),
        # Wide gamut in an SDR transfer is not HDR.
        ({"color_transfer": "bt2020-10", "pix_fmt": "yuv420p10le"}, (None, 10)),
    ],
)
def test_the_probe_reads_the_transfer_and_the_bit_depth(fields, expected):
    source = describe({"streams": [video(**fields)], "format": {}}).source
    dynamic_range, bit_depth = expected
    assert source.dynamic_range is (dynamic_range or DynamicRange.SDR)
    assert source.bit_depth == bit_depth
    assert not source.wide_gamut


def test_the_probe_tells_wide_gamut_sdr_from_hdr_and_from_bt709():
    def wide(**fields: str) -> bool:
        return describe({"streams": [video(**fields)]}).source.wide_gamut

    assert wide(color_primaries="bt2020", color_transfer="bt2020-10")
    assert wide(color_primaries="bt2020", color_transfer="bt709")
    assert not wide(color_primaries="bt2020", color_transfer="arib-std-b67")
    assert not wide(color_primaries="bt709", color_transfer="bt709")


def test_the_probe_reads_hdr10_metadata_from_the_stream_or_its_first_frame():
    display = {
        "side_data_type": "Mastering display metadata",
        "red_x": "34000/50000",
        "red_y": "16000/50000",
        "green_x": "13250/50000",
        "green_y": "34500/50000",
        "blue_x": "7500/50000",
        "blue_y": "3000/50000",
        "white_point_x": "15635/50000",
        "white_point_y": "16450/50000",
        "min_luminance": "50/10000",
        "max_luminance": "10000000/10000",
    }
    light = {
        "side_data_type": "Content light level metadata",
        "max_content": 1000,
        "max_average": 400,
    }
    pq = video(index=1, color_transfer="smpte2084", side_data_list=[display])
    frames = [
        {"stream_index": 0, "side_data_list": [light | {"max_content": 1}]},
        {"stream_index": 1, "side_data_list": [light]},
    ]
    probed = describe({"streams": [{"codec_type": "audio"}, pq], "frames": frames})
    assert probed.hdr10 == HDR10_SOURCE
    assert describe({"streams": [video()]}).hdr10 == ""
    display["max_luminance"] = "0/1"
    assert describe({"streams": [pq], "frames": frames}).hdr10 == "max-cll=1000,400"


def media(dynamic_range: DynamicRange, bit_depth: int = 10) -> Media:
    return Media(
        source=Source(
            width=3840,
            height=2160,
            duration=10.0,
            frame_rate=Fraction(30),
            average_frame_rate=Fraction(30),
            has_audio=True,
            dynamic_range=dynamic_range,
            bit_depth=bit_depth,
        ),
        video_stream=0,
    )


def test_the_hdr_ladder_repeats_the_top_rungs_only_when_asked_for_10_bit_hdr():
    def hdr_rungs(source: Media, on: bool = True) -> list[str]:
        plan = plan_transcode(
            source, ladder=SMALL_LADDER, chunk_seconds=60, preset="p", hdr_ladder=on
        )
        return [f"{v.name}:{v.dynamic_range}" for v in plan.hdr_variants]

    assert hdr_rungs(media(DynamicRange.PQ)) == [
        "360p-hdr:PQ",
        "240p-hdr:PQ",
        "144p-hdr:PQ",
    ]
    assert hdr_rungs(media(DynamicRange.HLG), on=False) == []
    assert hdr_rungs(media(DynamicRange.SDR)) == []
    assert hdr_rungs(media(DynamicRange.HLG, bit_depth=8)) == []
    five = tuple(Variant(f"r{n}", 16 * n, 9 * n, n) for n in range(5, 0, -1))
    assert [v.name for v in hdr_variants(five, DynamicRange.HLG)] == [
        "r5-hdr",
        "r4-hdr",
        "r3-hdr",
    ]


def plan(source_range: DynamicRange, *, hdr: bool = False) -> TranscodePlan:
    variants = (Variant("720p", 1280, 720, 3_000_000), Variant("360p", 640, 360, 1))
    return TranscodePlan(
        mode=Mode.SINGLE,
        duration=10.0,
        display_width=3840,
        display_height=2160,
        frame_rate=Fraction(30),
        variants=variants,
        has_audio=False,
        video_stream=0,
        preset="veryfast",
        seekable=True,
        chunks=plan_chunks(10.0, Fraction(30), 60),
        source_range=source_range,
        hdr_variants=hdr_variants(variants, source_range) if hdr else (),
        hdr10="max-cll=1000,400" if hdr else "",
    )


def test_hdr_is_tone_mapped_once_at_the_top_rungs_size_and_tagged_bt709(tmp_path):
    args = single_command("in.mp4", plan(DynamicRange.PQ), tmp_path)
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith(
        "[0:v:0]fps=30,zscale=w=1280:h=720:f=bicubic:tin=smpte2084:pin=bt2020:"
        "min=bt2020nc:t=linear:npl=100,"
    )
    assert graph.count("tonemap=mobius") == 1
    assert "zscale=t=bt709:m=bt709:r=tv,format=yuv420p,split=2[s0][s1];" in graph
    for stream in ("v:0", "v:1"):
        for option in ("-color_primaries", "-color_trc", "-colorspace"):
            assert args[args.index(f"{option}:{stream}") + 1] == "bt709"
    assert "libx265" not in args


def test_wide_gamut_sdr_is_converted_once_and_tagged_bt709(tmp_path):
    wide = dataclasses.replace(plan(DynamicRange.SDR), wide_gamut=True)
    args = single_command("in.mp4", wide, tmp_path)
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith(
        "[0:v:0]fps=30,zscale=pin=bt2020:min=bt2020nc:tin=bt709:p=bt709:m=bt709:"
        "t=bt709:r=tv,format=yuv420p,split=2[s0][s1];"
    )
    for stream in ("v:0", "v:1"):
        for option in ("-color_primaries", "-color_trc", "-colorspace"):
            assert args[args.index(f"{option}:{stream}") + 1] == "bt709"
    assert TranscodePlan.from_dict(wide.to_dict()) == wide


def test_an_sdr_source_keeps_its_graph_and_its_own_tags(tmp_path):
    args = single_command("in.mp4", plan(DynamicRange.SDR), tmp_path)
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]fps=30,format=yuv420p,split=2[s0][s1];")
    assert "zscale" not in graph
    assert not [a for a in args if a.startswith("-color")]


def test_the_hdr_ladder_branches_off_before_the_tone_mapping(tmp_path):
    args = single_command("in.mp4", plan(DynamicRange.HLG, hdr=True), tmp_path)
    graph = args[args.index("-filter_complex") + 1].split(";")
    assert graph[0] == "[0:v:0]fps=30,split=2[sdr][hdr]"
    assert graph[1].startswith("[sdr]zscale=w=1280:h=720:")
    assert graph[4] == "[hdr]format=yuv420p10le,split=2[h0][h1]"
    assert graph[5:] == [
        "[h0]scale=1280:720,setsar=1[v2]",
        "[h1]scale=640:360,setsar=1[v3]",
    ]
    assert args[args.index("-c:v:2") + 1] == "libx265"
    assert args[args.index("-tag:v:2") + 1] == "hvc1"
    assert "transfer=arib-std-b67" in args[args.index("-x265-params:v:3") + 1]
    assert "-color_primaries:v:2" not in args
    assert args[args.index("-var_stream_map") + 1] == (
        "v:0,name:720p v:1,name:360p v:2,name:720p-hdr v:3,name:360p-hdr"
    )


def test_the_plan_keeps_its_range_and_hdr_rungs_through_the_record():
    hdr = plan(DynamicRange.HLG, hdr=True)
    assert TranscodePlan.from_dict(hdr.to_dict()) == hdr
    older = plan(DynamicRange.SDR).to_dict()
    del older["sourceRange"], older["hdrVariants"], older["hdr10"]
    for variant in older["variants"]:
        del variant["range"]
    assert TranscodePlan.from_dict(older) == plan(DynamicRange.SDR)
