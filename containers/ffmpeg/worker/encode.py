"""The ffmpeg runs of a transcode: every rung and the audio tracks in one run
(a short source), or one chunk's rungs, or the whole source's audio tracks
(a long source, encoded by many workers at once).

Every run decodes once, converts to the plan's constant frame rate, splits,
scales per rung and encodes each rung with the same x264 settings, whether
the rung is encoded alone, beside the others, or a chunk at a time:

- a closed GOP of exactly ``gop_frames`` (2 s), forced on frame numbers
  (``n``), so that a chunk that starts on a segment boundary forces its
  keyframes on the same frames as the one-run encode, and every rung has
  them at the same instants (no scene-cut keyframes);
- capped CRF: constant quality, each rung's peak held to its ladder cap by
  the VBV (-maxrate/-bufsize). The VBV starts half full (``vbv-init``) rather
  than x264's 90 %, so the video's first seconds do not get a burst of bits
  over the cap; ``stitchable`` keeps every chunk's headers alike.

A chunk after the first starts encoding one GOP early (the pre-roll) and that
GOP is dropped: the rate control (VBV fill, complexity history) then enters
the chunk about as the one-run encode does, instead of cold, which in busy
scenes near the caps costs the first seconds of each chunk up to 1 dB. The
chunk's run cuts a segment at every GOP so that the pre-roll is a segment of
its own; its GOPs are joined three to a segment afterwards.

A PQ or HLG (HDR) source is tone-mapped once, before the split, to what
every H.264 rung is: 8-bit BT.709 SDR, tagged so. The rungs of the HDR
ladder (``TranscodePlan.hdr_variants``) branch off before the tone mapping
and keep the source's transfer in 10-bit HEVC (Main 10), with the same GOP,
keyframes, CRF-and-cap rate control and segments as the H.264 rungs.

The poster and the scrubbing sprite are not made here: they come from the
encoded rungs afterwards, so every output of a run starts at once and
ffmpeg's progress report moves from the first second.

Only options that exist in ffmpeg 5.1 and behave the same in 7.x are used.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from vod.ladder import (
    AUDIO_BITRATE,
    AUDIO_CHANNELS,
    AUDIO_SAMPLE_RATE,
    DynamicRange,
    Variant,
    audio_folder,
)
from vod.plan import GOPS_PER_SEGMENT, Chunk, TranscodePlan, segmenter_seconds
from worker.errors import Interrupted, Unprocessable, tool_message

#: x264's constant-quality target; 21 is visually clean at every rung, and
#: the caps keep hard scenes within the ladder's rates.
CRF = 21
#: GOPs a chunk encodes before its first frame, then drops.
PREROLL_GOPS = 1
X264_PARAMS = "stitchable=1:vbv-init=0.5"
#: x265's CRF for the HDR rungs: its scale sits about 3 above x264's for
#: like quality (x265 documents its default 28 as x264's 23), so CRF + 3.
HEVC_CRF = CRF + 3
#: HDR to SDR: linear light with SDR white at 100 cd/m2 (1.0), BT.2020 to
#: BT.709 primaries, then the Mobius curve, which passes light up to 0.3 as
#: it is and rolls brighter light off smoothly to the peak (Hable's curve,
#: the usual choice, darkens the whole picture by about a sixth); light
#: above twice SDR white fades towards white (desat) rather than clipping
#: to a saturated colour. zscale's names, valid in ffmpeg 5.1 and 7.x.
TONE_MAP = (
    "zscale=w={width}:h={height}:f=bicubic:tin={transfer}:pin=bt2020:"
    "min=bt2020nc:t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,"
    "tonemap=tonemap=mobius:desat=2,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
)
#: Wide-gamut SDR to BT.709: BT.2020 primaries and matrix to BT.709's
#: (zscale converts the primaries in linear light), the SDR transfer kept.
GAMUT_TO_BT709 = (
    "zscale=pin=bt2020:min=bt2020nc:tin=bt709:p=bt709:m=bt709:t=bt709:r=tv,"
    "format=yuv420p"
)
#: ffmpeg's (and x265's) names of the HDR transfers.
TRANSFERS = {DynamicRange.PQ: "smpte2084", DynamicRange.HLG: "arib-std-b67"}
#: What every tone-mapped rung says it is.
BT709_TAGS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709"}
VARIANT_PLAYLIST = "index.m3u8"
SEGMENT_PATTERN = "seg_%05d.m4s"
#: Checked this often for a stop request while ffmpeg runs.
_CANCEL_POLL_SECONDS = 0.25
#: ffmpeg reads a source URL over HTTP range requests; a dropped connection
#: is reopened where it broke.
_HTTP_INPUT_OPTIONS = (
    "-reconnect",
    "1",
    "-reconnect_on_network_error",
    "1",
    "-reconnect_delay_max",
    "10",
)


def input_args(source: str) -> list[str]:
    """``-i source``, with reconnection for a URL."""
    remote = source.startswith(("http://", "https://"))
    return [*(_HTTP_INPUT_OPTIONS if remote else ()), "-i", source]


def _base(source: str, *, seek: list[str] | None = None) -> list[str]:
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        *(seek or []),
        *input_args(source),
    ]


def single_command(
    source: str,
    plan: TranscodePlan,
    out_dir: Path,
    *,
    audio_filters: Sequence[str | None] = (),
) -> list[str]:
    """Every rung and the audio of a whole source in one run: one folder per
    rung and per audio track (``audio/``, ``audio2/``...) under ``out_dir``,
    each with its playlist, init segment and media segments.
    ``audio_filters`` has each track's filter (its loudness normalization),
    or None for a track kept as it is."""
    graph, maps = _audio_graph(plan, audio_filters)
    args = _base(source)
    args += [
        "-filter_complex",
        ";".join([_video_graph(plan, trim_start=False), *graph]),
    ]
    args += _video_outputs(plan)
    if maps:
        args += [*maps, *audio_codec_args()]
    entries = _audio_entries(plan)
    entries += _video_entries(plan)
    cut = segmenter_seconds(plan.frame_rate, plan.gop_frames * GOPS_PER_SEGMENT)
    return args + hls_muxer_args(out_dir, " ".join(entries), cut)


def chunk_command(
    source: str, plan: TranscodePlan, chunk: Chunk, out_dir: Path
) -> list[str]:
    """Every rung of one chunk, one segment per GOP: the pre-roll GOP (but
    for the first chunk), then from the chunk's first frame ``chunk.frames``
    frames (to the end for the last chunk). A later chunk enters the source
    just before its first frame and counts frames from there, so its output
    frames are the one-run encode's frames from ``first_frame - preroll``;
    the first chunk starts where the one-run encode does."""
    preroll = preroll_frames(plan, chunk)
    seek = _seek(plan, chunk.first_frame - preroll)
    args = _base(source, seek=seek)
    args += ["-filter_complex", _video_graph(plan, trim_start=bool(seek))]
    args += _video_outputs(plan)
    if chunk.frames is not None:
        args += ["-frames:v", str(preroll + chunk.frames)]
    entries = _video_entries(plan)
    cut = segmenter_seconds(plan.frame_rate, plan.gop_frames)
    return args + hls_muxer_args(out_dir, " ".join(entries), cut)


def _seek(plan: TranscodePlan, frame: int) -> list[str]:
    """``-ss`` to output frame ``frame`` of the source (none for frame 0),
    for a graph with ``trim_start``."""
    if not frame:
        return []
    start = Fraction(frame) / plan.frame_rate
    # Half a source frame early: that frame is kept, the one before not.
    rate = max(plan.source_frame_rate, plan.frame_rate)
    return ["-ss", f"{float(start - Fraction(1, 2) / rate):.6f}"]


def score_command(
    source: str,
    plan: TranscodePlan,
    gop: int,
    rungs: Sequence[Path],
    stats: Sequence[Path],
) -> list[str]:
    """GOP number ``gop`` of every rung (``rungs``: one fMP4 file each, in
    the plan's order) against the source, frame by frame: the source's GOP
    goes through the encode's own graph (seek, constant rate, scale per
    rung), and each rung's per-frame PSNR is written to its ``stats`` file."""
    seek = _seek(plan, gop * plan.gop_frames)
    # One frame more than a GOP: the PSNR filters stop at the rung's end.
    seconds = Fraction(plan.gop_frames + 1) / plan.frame_rate
    args = _base(source, seek=[*seek, "-t", f"{float(seconds):.6f}"])
    graph = [_video_graph(plan, trim_start=bool(seek))]
    for index, path in enumerate(rungs):
        args += ["-i", str(path)]
        graph.append(
            f"[{index + 1}:v:0]setpts=PTS-STARTPTS[e{index}];"
            f"[e{index}][v{index}]psnr=stats_file='{stats[index]}':shortest=1"
            f"[p{index}]"
        )
    args += ["-filter_complex", ";".join(graph)]
    for index in range(len(rungs)):
        args += ["-map", f"[p{index}]"]
    return [*args, "-f", "null", "-"]


def preroll_frames(plan: TranscodePlan, chunk: Chunk) -> int:
    return PREROLL_GOPS * plan.gop_frames if chunk.first_frame else 0


def audio_command(
    source: str,
    plan: TranscodePlan,
    out_dir: Path,
    *,
    audio_filters: Sequence[str | None] = (),
) -> list[str]:
    """The audio renditions of the whole source, one folder per track under
    ``out_dir`` (``audio/``, ``audio2/``...), with ``audio_filters`` as in
    ``single_command``. Their playlists are rewritten after every segment
    (EVENT playlists), so the worker can publish the tracks' start while the
    rest is encoded."""
    graph, maps = _audio_graph(plan, audio_filters)
    args = _base(source)
    if graph:
        args += ["-filter_complex", ";".join(graph)]
    args += [*maps, "-vn", *audio_codec_args()]
    cut = segmenter_seconds(plan.frame_rate, plan.gop_frames * GOPS_PER_SEGMENT)
    return args + hls_muxer_args(
        out_dir, " ".join(_audio_entries(plan)), cut, playlist_type="event"
    )


def _video_entries(plan: TranscodePlan) -> list[str]:
    return [f"v:{i},name:{v.name}" for i, v in enumerate(plan.video_variants)]


def _audio_graph(
    plan: TranscodePlan, filters: Sequence[str | None]
) -> tuple[list[str], list[str]]:
    """Each audio track's filter chain (``[a0]``...) and the ``-map`` of
    every track, in order: output audio stream N is source track N."""
    graph: list[str] = []
    maps: list[str] = []
    for track in range(len(plan.audio_tracks)):
        chain = filters[track] if track < len(filters) else None
        if chain is None:
            maps += ["-map", f"0:a:{track}"]
        else:
            graph.append(f"[0:a:{track}]{chain}[a{track}]")
            maps += ["-map", f"[a{track}]"]
    return graph, maps


def _audio_entries(plan: TranscodePlan) -> list[str]:
    return [
        f"a:{track},name:{audio_folder(track)}"
        for track in range(len(plan.audio_tracks))
    ]


def _video_graph(plan: TranscodePlan, *, trim_start: bool) -> str:
    """Decode, constant rate, split, scale: ``[v0]``, ``[v1]``, ... (the SDR
    rungs, then the HDR ones). After a seek the first kept frame is moved to
    time 0, where the one-run encode's frame ``first_frame`` sits relative
    to its own frame 0."""
    rebase = "setpts=PTS-STARTPTS," if trim_start else ""
    head = f"[0:v:{plan.video_stream}]{rebase}fps={plan.frame_rate},"
    sdr = _to_sdr(plan)
    if not plan.hdr_variants:
        return ";".join([head + sdr, *_scaled(plan.variants, "s", 0)])
    return ";".join(
        [
            head + "split=2[sdr][hdr]",
            "[sdr]" + sdr,
            *_scaled(plan.variants, "s", 0),
            "[hdr]" + _split("format=yuv420p10le", len(plan.hdr_variants), "h"),
            *_scaled(plan.hdr_variants, "h", len(plan.variants)),
        ]
    )


def _to_sdr(plan: TranscodePlan) -> str:
    """The SDR rungs' common picture, split to ``[s0]``, ``[s1]``, ...: an
    HDR source tone-mapped at the top rung's size (a 4K phone clip's 1080p
    top rung is a quarter of the float work), a wide-gamut SDR one taken to
    BT.709, any other as it is."""
    if plan.source_range is DynamicRange.SDR:
        convert = GAMUT_TO_BT709 if plan.wide_gamut else "format=yuv420p"
    else:
        top = plan.variants[0]
        convert = TONE_MAP.format(
            width=top.width, height=top.height, transfer=TRANSFERS[plan.source_range]
        )
    return _split(convert, len(plan.variants), "s")


def _split(chain: str, count: int, label: str) -> str:
    labels = "".join(f"[{label}{i}]" for i in range(count))
    return f"{chain},split={count}{labels}"


def _scaled(variants: tuple[Variant, ...], label: str, first: int) -> list[str]:
    return [
        f"[{label}{i}]scale={v.width}:{v.height},setsar=1[v{first + i}]"
        for i, v in enumerate(variants)
    ]


def _video_outputs(plan: TranscodePlan) -> list[str]:
    args = []
    for index, variant in enumerate(plan.video_variants):
        args += ["-map", f"[v{index}]"]
        if variant.is_hdr:
            args += hevc_codec_args(
                variant,
                index,
                gop_frames=plan.gop_frames,
                preset=plan.preset,
                hdr10=plan.hdr10,
            )
            continue
        args += video_codec_args(
            variant, index, gop_frames=plan.gop_frames, preset=plan.preset
        )
        if plan.source_range is not DynamicRange.SDR or plan.wide_gamut:
            for option, value in BT709_TAGS.items():
                args += [f"-{option}:v:{index}", value]
    return args


def video_codec_args(
    variant: Variant, index: int, *, gop_frames: int, preset: str
) -> list[str]:
    """x264 settings of output video stream ``index``."""
    stream = f"v:{index}"
    gop = str(gop_frames)
    return [
        f"-c:{stream}",
        "libx264",
        f"-preset:{stream}",
        preset,
        f"-profile:{stream}",
        "high",
        f"-crf:{stream}",
        str(CRF),
        f"-maxrate:{stream}",
        str(variant.max_bitrate),
        f"-bufsize:{stream}",
        str(variant.buffer_size),
        f"-g:{stream}",
        gop,
        f"-keyint_min:{stream}",
        gop,
        f"-sc_threshold:{stream}",
        "0",
        f"-flags:{stream}",
        "+cgop",
        f"-force_key_frames:{stream}",
        f"expr:eq(mod(n,{gop}),0)",
        f"-x264-params:{stream}",
        X264_PARAMS,
    ]


def hevc_codec_args(
    variant: Variant, index: int, *, gop_frames: int, preset: str, hdr10: str = ""
) -> list[str]:
    """x265 Main 10 settings of HDR output video stream ``index``: the
    x264 rungs' GOP and rate control, the source's transfer and BT.2020
    tagged in the stream, a PQ source's ``hdr10`` metadata (x265's
    master-display and max-cll) in SEI, and ``hvc1`` sample entries
    (parameter sets in the init segment), which Apple's players require of
    HEVC in HLS."""
    stream = f"v:{index}"
    gop = str(gop_frames)
    params = ":".join(
        [
            f"keyint={gop}",
            f"min-keyint={gop}",
            "scenecut=0",
            "open-gop=0",
            "vbv-init=0.5",
            "colorprim=bt2020",
            f"transfer={TRANSFERS[variant.dynamic_range]}",
            "colormatrix=bt2020nc",
            *([hdr10] if hdr10 and variant.dynamic_range is DynamicRange.PQ else []),
            "log-level=error",
        ]
    )
    return [
        f"-c:{stream}",
        "libx265",
        f"-preset:{stream}",
        preset,
        f"-profile:{stream}",
        "main10",
        f"-crf:{stream}",
        str(HEVC_CRF),
        f"-maxrate:{stream}",
        str(variant.max_bitrate),
        f"-bufsize:{stream}",
        str(variant.buffer_size),
        f"-force_key_frames:{stream}",
        f"expr:eq(mod(n,{gop}),0)",
        # A forced keyframe is an IDR, as segment starts must be.
        f"-forced-idr:{stream}",
        "1",
        f"-tag:{stream}",
        "hvc1",
        f"-x265-params:{stream}",
        params,
    ]


def audio_codec_args() -> list[str]:
    return [
        "-c:a",
        "aac",
        "-b:a",
        str(AUDIO_BITRATE),
        "-ac",
        str(AUDIO_CHANNELS),
        "-ar",
        str(AUDIO_SAMPLE_RATE),
    ]


def hls_muxer_args(
    out_dir: Path, stream_map: str, cut_seconds: float, *, playlist_type: str = "vod"
) -> list[str]:
    """fMP4 HLS, one folder per stream, cut every ``cut_seconds``
    (``vod.plan.segmenter_seconds``). The playlists ffmpeg writes here are
    read back, not published: the worker writes the published ones from what
    was produced."""
    return [
        "-f",
        "hls",
        "-hls_time",
        f"{cut_seconds:.6f}",
        "-hls_playlist_type",
        playlist_type,
        "-hls_segment_type",
        "fmp4",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        str(out_dir / "%v" / SEGMENT_PATTERN),
        "-var_stream_map",
        stream_map,
        str(out_dir / "%v" / VARIANT_PLAYLIST),
    ]


def parse_position(line: str) -> float | None:
    """Seconds encoded so far, from an ``-progress`` line such as
    ``out_time_us=4032000``; None for other lines and ``N/A``."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us":
        return None
    try:
        return max(0.0, int(value) / 1_000_000)
    except ValueError:
        return None


def run_encode(
    args: list[str],
    *,
    log_path: Path,
    cancel: threading.Event,
    on_position: Callable[[float], None],
    source_label: str = "",
    niceness: int = 0,
) -> None:
    """Run ``args``, passing each progress position (seconds of output) to
    ``on_position``. Kills ffmpeg and raises Interrupted when ``cancel`` is
    set, and raises Unprocessable when ffmpeg fails on the input (its message
    without ``source_label``, our path or URL). A callback's exception also
    stops ffmpeg before it propagates. A positive ``niceness`` runs ffmpeg at
    a lower CPU priority (through ``nice``, so that all its threads have it)."""
    command = [args[0], "-progress", "pipe:1", "-nostats", *args[1:]]
    if niceness:
        command = ["nice", "-n", str(niceness), *command]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True
        )
    watcher = threading.Thread(
        target=_kill_on_cancel, args=(process, cancel), daemon=True
    )
    watcher.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seconds = parse_position(line)
            if seconds is not None:
                on_position(seconds)
        returncode = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    if returncode == 0:
        return
    if cancel.is_set():
        raise Interrupted("ffmpeg was stopped")
    if returncode < 0:
        raise RuntimeError(f"ffmpeg was killed by signal {-returncode}")
    detail = tool_message(log_path.read_text(errors="replace"), source_label)
    raise Unprocessable(f"the video could not be transcoded ({detail})")


def _kill_on_cancel(process: subprocess.Popen[str], cancel: threading.Event) -> None:
    while process.poll() is None:
        if cancel.wait(_CANCEL_POLL_SECONDS):
            process.kill()
            return
