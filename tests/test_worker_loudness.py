"""Two-pass loudness normalization on real ffmpeg: a loud and a quiet tone
come out at the target, silence stays silent; and the pieces (ebur128's
report, the second pass's filter) on their own."""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.test_worker_encode import plan
from vod.ladder import audio_folder
from vod.loudness import LoudnessTarget
from worker.encode import audio_command, run_encode
from worker.loudness import (
    Measurement,
    measure,
    normalize_filter,
    parse_measurements,
)
from worker.renditions import collect
from worker.thumbnails import join_rendition

TARGET = LoudnessTarget(-16.0, -1.0)


def _tone(lufs: float) -> float:
    """The amplitude of a 997 Hz sine of ``lufs``: its peak in dBFS is its
    loudness plus 3 (BS.1770)."""
    return 10 ** ((lufs + 3) / 20)


#: The source's tracks, as aevalsrc expressions.
TRACKS = {
    "loud": f"{_tone(-6)}*sin(2*PI*997*t):d=2",
    "quiet": f"{_tone(-35)}*sin(2*PI*997*t):d=2",
    "silent": "0:d=2",
    # -29 LUFS with a 2 ms burst at -3 dBTP: one gain of +13 dB would clip.
    "peaky": f"'if(between(t,2,2.002),0.99,{_tone(-30)})*sin(2*PI*997*t)':d=4",
}

LOG = """[aac @ 0x5581] Qavg: 1024.000
[Parsed_aformat_0 @ 0x55d5] auto-inserting resampler
[Parsed_ebur128_1 @ 0x562db638dcc0] Summary:

  Integrated loudness:
    I:         -24.8 LUFS
    Threshold: -34.8 LUFS

  Loudness range:
    LRA:        13.2 LU
    Threshold: -44.1 LUFS
    LRA low:   -33.0 LUFS
    LRA high:  -19.8 LUFS

  True peak:
    Peak:      -20.7 dBFS
[Parsed_ebur128_3 @ 0x562db6388b40] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
    Threshold:   0.0 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold:   0.0 LUFS
    LRA low:     0.0 LUFS
    LRA high:    0.0 LUFS

  True peak:
    Peak:       -inf dBFS
"""


def _ffmpeg(*args: str) -> str:
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stderr


@dataclasses.dataclass
class Normalized:
    source: list[Measurement]
    filters: list[str | None]
    #: Track name -> its encoded rendition as one file.
    outputs: dict[str, Path]


@pytest.fixture(scope="module")
def normalized(tmp_path_factory) -> Normalized:
    """A source with a tone at -6 LUFS, one at -35 LUFS, silence (2 s each)
    and a peaky tone (4 s), measured, then encoded by the audio task's
    command with each track's second pass."""
    work = tmp_path_factory.mktemp("loudness")
    source = work / "tones.mka"
    inputs: list[str] = []
    for expression in TRACKS.values():
        inputs += ["-f", "lavfi", "-i", f"aevalsrc={expression}"]
    maps = [arg for index in range(len(TRACKS)) for arg in ("-map", f"{index}:a")]
    _ffmpeg(*inputs, *maps, "-c:a", "flac", str(source))
    tracks = dataclasses.replace(
        plan(duration=4.0), audio_languages=("und",) * len(TRACKS), loudness=TARGET
    )
    measured = measure(
        [str(source)],
        [f"0:a:{track}" for track in range(len(TRACKS))],
        log_path=work / "measure.log",
        cancel=threading.Event(),
    )
    filters = [normalize_filter(m, TARGET) for m in measured]
    out = work / "out"
    out.mkdir()
    run_encode(
        audio_command(str(source), tracks, out, audio_filters=filters),
        log_path=work / "encode.log",
        cancel=threading.Event(),
        on_position=lambda _: None,
    )
    outputs = {}
    for track, name in enumerate(TRACKS):
        rendition = collect(out, audio_folder(track), video=False)
        outputs[name] = join_rendition(
            rendition.folder / rendition.init, rendition.paths(), work / f"{name}.mp4"
        )
    return Normalized(measured, filters, outputs)


def test_the_first_pass_measures_each_track_of_the_source(normalized):
    loud, quiet, silent, _ = normalized.source
    assert loud.integrated == pytest.approx(-6.0, abs=0.5)
    assert quiet.integrated == pytest.approx(-35.0, abs=0.5)
    assert silent.silent


def test_a_loud_and_a_quiet_tone_come_out_within_1_lu_of_the_target(
    normalized, tmp_path
):
    outputs = [str(normalized.outputs[track]) for track in ("loud", "quiet")]
    measured = measure(
        outputs, ["0:a:0", "1:a:0"], log_path=tmp_path / "log", cancel=threading.Event()
    )
    assert len(measured) == 2
    for loudness in measured:
        assert loudness.integrated == pytest.approx(TARGET.integrated, abs=1.0)
        assert loudness.true_peak <= TARGET.true_peak + 0.5


def test_a_peak_one_gain_would_clip_is_limited_and_the_track_raised(
    normalized, tmp_path
):
    assert (normalized.filters[3] or "").startswith(
        "aformat=channel_layouts=stereo,loudnorm="
    )
    (peaky,) = measure(
        [str(normalized.outputs["peaky"])],
        ["0:a:0"],
        log_path=tmp_path / "log",
        cancel=threading.Event(),
    )
    assert peaky.true_peak <= TARGET.true_peak + 0.5
    # loudnorm's dynamic mode closes in on the target over seconds.
    assert peaky.integrated == pytest.approx(TARGET.integrated, abs=2.0)


def test_silence_stays_silent(normalized):
    assert normalized.filters[2] is None
    log = _ffmpeg(
        "-i",
        str(normalized.outputs["silent"]),
        "-af",
        "volumedetect",
        "-f",
        "null",
        "-",
    )
    peak = re.search(r"max_volume: (-?[\d.]+|-inf) dB", log)
    assert peak is not None
    assert float(peak.group(1)) < -60


def test_ebur128s_summaries_are_read_in_the_order_of_the_graph():
    first, second = parse_measurements(LOG, 2)
    assert first == Measurement(-24.8, -20.7, 13.2, -34.8)
    assert first.to_dict() == {"integrated": -24.8, "truePeak": -20.7}
    assert second.silent
    assert not second.audible
    assert second.to_dict() == {"integrated": None, "truePeak": None}
    with pytest.raises(RuntimeError, match="1 tracks, not 2"):
        parse_measurements(LOG.split("[Parsed_ebur128_3")[0], 2)


def test_the_second_pass_is_one_gain_unless_the_peak_would_pass_the_ceiling():
    linear = normalize_filter(Measurement(-24.8, -20.7, 13.2, -34.8), TARGET)
    assert linear == "aformat=channel_layouts=stereo,volume=8.80dB"
    # +13 dB would put a -3.1 dBTP peak at +9.9 dBTP: loudnorm limits it.
    peaky = normalize_filter(Measurement(-29.0, -3.1, 13.2, -39.0), TARGET)
    assert peaky == (
        "aformat=channel_layouts=stereo,loudnorm=I=-16:TP=-1:LRA=14"
        ":measured_I=-29:measured_TP=-3.1:measured_LRA=13.2"
        ":measured_thresh=-39:linear=true"
    )


@pytest.mark.parametrize("integrated", [-math.inf, -70.0, -50.5])
def test_silence_and_hiss_are_left_as_they_are(integrated):
    assert normalize_filter(Measurement(integrated, -40, 0, -70), TARGET) is None
