"""Two-pass EBU R128 loudness normalization: one audio-only ffmpeg run
measures every track with ``loudnorm`` (its JSON report), the encode applies
each track's measurement with ``linear=true`` (one gain for the whole track,
so its dynamics are kept; loudnorm falls back to its dynamic mode only when
that gain would push the true peak over the ceiling), and the encoded
renditions are measured for the record with ``ebur128``, which reports the
same integrated loudness and true peak at a third of loudnorm's cost (no
192 kHz resampling).

Both passes measure and correct a track as the renditions carry it, mixed
to their channel layout first: a 5.1 source's downmix is not as loud as its
six channels.

Only options that exist in ffmpeg 5.1 and behave the same in 7.x are used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from vod.ladder import AUDIO_CHANNELS
from vod.loudness import QUIET_FLOOR_LUFS, LoudnessTarget
from worker.encode import input_args, run_encode

#: loudnorm's loudness-range target only shapes its dynamic mode, and ffmpeg
#: 6+ refuses linear mode for a source whose range exceeds it: so the target
#: is the source's own range, within what loudnorm accepts.
_LRA_RANGE = (1, 50)
#: The renditions' layout (the same mix as the encoder's ``-ac``).
_DOWNMIX = "aformat=channel_layouts=" + {1: "mono", 2: "stereo"}[AUDIO_CHANNELS]
#: loudnorm and ebur128 report after a line naming the instance, numbered in
#: the order of the graph.
_REPORT = re.compile(r"\[Parsed_loudnorm_(\d+) @ [^\]]*\]\s*(\{[^}]*\})")
_SUMMARY = re.compile(
    r"\[Parsed_ebur128_(\d+) @ [^\]]*\] Summary:.*?"
    r"I:\s+(\S+) LUFS.*?Peak:\s+(\S+) dBFS",
    re.DOTALL,
)
_Report = TypeVar("_Report")
#: BS.1770's absolute gate: what measures this or less is silence.
_SILENCE_LUFS = -70.0


@dataclasses.dataclass(frozen=True)
class Loudness:
    """Integrated loudness (LUFS) and true peak (dBTP) of a track."""

    integrated: float
    true_peak: float

    def to_dict(self) -> dict[str, float | None]:
        """For the record: a value silence has none of is left None."""
        return {
            "integrated": (
                round(self.integrated, 2)
                if self.integrated > _SILENCE_LUFS and math.isfinite(self.integrated)
                else None
            ),
            "truePeak": (
                round(self.true_peak, 2) if math.isfinite(self.true_peak) else None
            ),
        }


@dataclasses.dataclass(frozen=True)
class Measurement:
    """loudnorm's measurement of one track: integrated loudness (LUFS,
    ``-inf`` for silence), true peak (dBTP), loudness range (LU), gating
    threshold (LUFS) and the offset its own pass would have left."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float
    offset: float

    @classmethod
    def parse(cls, report: dict[str, Any]) -> Measurement:
        return cls(
            integrated=float(report["input_i"]),
            true_peak=float(report["input_tp"]),
            lra=float(report["input_lra"]),
            threshold=float(report["input_thresh"]),
            offset=float(report["target_offset"]),
        )

    @property
    def audible(self) -> bool:
        return math.isfinite(self.integrated) and self.integrated >= QUIET_FLOOR_LUFS

    @property
    def loudness(self) -> Loudness:
        return Loudness(self.integrated, self.true_peak)


def measure_command(
    inputs: Sequence[str], streams: Sequence[str], target: LoudnessTarget
) -> list[str]:
    """One run that decodes only the audio ``streams`` (``0:a:1``) of
    ``inputs`` and measures each; the reports go to the log (level info)."""
    return _measuring_command(
        inputs,
        [
            f"[{stream}]{_DOWNMIX},loudnorm=I={target.integrated:g}"
            f":TP={target.true_peak:g}:print_format=json[m{index}]"
            for index, stream in enumerate(streams)
        ],
    )


def loudness_command(inputs: Sequence[str]) -> list[str]:
    """One run that measures the first audio stream of each of ``inputs``
    (the encoded renditions) with ebur128; its summaries go to the log,
    its per-frame lines do not."""
    return _measuring_command(
        inputs,
        [
            f"[{index}:a:0]ebur128=peak=true:framelog=verbose[m{index}]"
            for index in range(len(inputs))
        ],
    )


def _measuring_command(inputs: Sequence[str], chains: Sequence[str]) -> list[str]:
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info"]
    for source in inputs:
        args += input_args(source)
    args += ["-filter_complex", ";".join(chains)]
    for index in range(len(chains)):
        args += ["-map", f"[m{index}]"]
    return [*args, "-f", "null", "-"]


def parse_measurements(log: str, count: int) -> list[Measurement]:
    """The ``count`` reports of a measuring run's log, in stream order."""
    reports = {
        int(number): Measurement.parse(json.loads(text))
        for number, text in _REPORT.findall(log)
    }
    return _in_order(reports, count)


def parse_loudness(log: str, count: int) -> list[Loudness]:
    """The ``count`` ebur128 summaries of a measuring run's log, in order."""
    summaries = {
        int(number): Loudness(float(integrated), float(peak))
        for number, integrated, peak in _SUMMARY.findall(log)
    }
    return _in_order(summaries, count)


def _in_order(reports: dict[int, _Report], count: int) -> list[_Report]:
    if len(reports) != count:
        raise RuntimeError(f"ffmpeg reported on {len(reports)} tracks, not {count}")
    return [reports[number] for number in sorted(reports)]


def measure(
    inputs: Sequence[str],
    streams: Sequence[str],
    target: LoudnessTarget,
    *,
    log_path: Path,
    cancel: threading.Event,
    source_label: str = "",
) -> list[Measurement]:
    """The first pass over ``streams`` of ``inputs``; Unprocessable when
    ffmpeg cannot decode them, Interrupted when ``cancel`` is set."""
    _run(measure_command(inputs, streams, target), log_path, cancel, source_label)
    return parse_measurements(log_path.read_text(errors="replace"), len(streams))


def measure_renditions(
    renditions: Sequence[str], *, log_path: Path, cancel: threading.Event
) -> list[Loudness]:
    """The loudness of each encoded rendition (a file each)."""
    _run(loudness_command(renditions), log_path, cancel, "")
    return parse_loudness(log_path.read_text(errors="replace"), len(renditions))


def _run(
    args: list[str], log_path: Path, cancel: threading.Event, source_label: str
) -> None:
    run_encode(
        args,
        log_path=log_path,
        cancel=cancel,
        on_position=lambda _seconds: None,
        source_label=source_label,
    )


def normalize_filter(measured: Measurement, target: LoudnessTarget) -> str | None:
    """The second pass for a track measured ``measured``; None for a track
    that is left as it is (see ``vod.loudness.QUIET_FLOOR_LUFS``)."""
    if not measured.audible:
        return None
    low, high = _LRA_RANGE
    lra = min(high, max(low, math.ceil(measured.lra)))
    return (
        f"{_DOWNMIX},loudnorm=I={target.integrated:g}:TP={target.true_peak:g}:LRA={lra}"
        f":measured_I={measured.integrated:.2f}:measured_TP={measured.true_peak:.2f}"
        f":measured_LRA={measured.lra:.2f}:measured_thresh={measured.threshold:.2f}"
        f":offset={measured.offset:.2f}:linear=true"
    )
