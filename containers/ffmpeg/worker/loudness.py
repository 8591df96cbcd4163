"""Two-pass EBU R128 loudness normalization: one audio-only ffmpeg run
measures every track, the encode applies each track's measurement, and the
encoded renditions are measured the same way for the record.

The second pass is what ``loudnorm`` with ``measured_*`` and ``linear=true``
does: one gain for the whole track (target less measured loudness), so its
dynamics are kept, unless that gain would push the true peak over the
ceiling; then loudnorm's dynamic mode (a limiter) brings it to the target.
The one gain is applied with ``volume``: loudnorm applies it too, but at
192 kHz, which made the audio encode 2.5 times as costly (two 26 s tracks:
1.0 s of CPU with ``volume``, 2.7 s with loudnorm), and the audio task is
what a long video waits for last.

Both measurements use ``ebur128``, not loudnorm's own first pass: it reports
the same BS.1770 quantities the second pass takes (integrated loudness, its
gating threshold, loudness range, true peak) for about a quarter of the CPU
time, since loudnorm resamples to 192 kHz. What loudnorm's first pass adds,
its ``target_offset``, only corrects its dynamic mode.

A track is measured and corrected as the renditions carry it, mixed to
their channel layout first: a 5.1 source's downmix is not as loud as its
six channels.

Only options that exist in ffmpeg 5.1 and behave the same in 7.x are used.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from vod.ladder import AUDIO_CHANNELS
from vod.loudness import QUIET_FLOOR_LUFS, LoudnessTarget
from worker.encode import input_args, run_encode

#: loudnorm's loudness-range target shapes its dynamic mode: the source's own
#: range (within what loudnorm accepts), so that it limits peaks without
#: also compressing the track.
_LRA_RANGE = (1, 50)
#: The renditions' layout (the same mix as the encoder's ``-ac``).
_DOWNMIX = "aformat=channel_layouts=" + {1: "mono", 2: "stereo"}[AUDIO_CHANNELS]
#: ebur128 reports after a line naming the instance, numbered in the order
#: of the graph; its per-frame lines go to the verbose level, below the log's.
_SUMMARY = re.compile(
    r"\[Parsed_ebur128_(\d+) @ [^\]]*\] Summary:\s*"
    r"Integrated loudness:\s*I:\s*(\S+) LUFS\s*Threshold:\s*(\S+) LUFS\s*"
    r"Loudness range:\s*LRA:\s*(\S+) LU.*?True peak:\s*Peak:\s*(\S+) dBFS",
    re.DOTALL,
)
#: BS.1770's absolute gate: a track that measures this or less is silent.
_SILENCE_LUFS = -70.0


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One track's integrated loudness (LUFS), true peak (dBTP), loudness
    range (LU) and the relative gating threshold (LUFS) of its loudness."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float

    @property
    def silent(self) -> bool:
        return not self.integrated > _SILENCE_LUFS

    @property
    def audible(self) -> bool:
        """Loud enough to be normalized (``vod.loudness.QUIET_FLOOR_LUFS``)."""
        return not self.silent and self.integrated >= QUIET_FLOOR_LUFS

    def to_dict(self) -> dict[str, float | None]:
        """For the record; silence has neither value."""
        if self.silent:
            return {"integrated": None, "truePeak": None}
        return {
            "integrated": round(self.integrated, 2),
            "truePeak": round(self.true_peak, 2)
            if math.isfinite(self.true_peak)
            else None,
        }


def measure_command(inputs: Sequence[str], streams: Sequence[str]) -> list[str]:
    """One run that decodes only the audio ``streams`` (``0:a:1``) of
    ``inputs`` and measures each; the summaries go to the log (level info)."""
    chains = [
        f"[{stream}]{_DOWNMIX},ebur128=peak=true:framelog=verbose[m{index}]"
        for index, stream in enumerate(streams)
    ]
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info"]
    for source in inputs:
        args += input_args(source)
    args += ["-filter_complex", ";".join(chains)]
    for index in range(len(chains)):
        args += ["-map", f"[m{index}]"]
    return [*args, "-f", "null", "-"]


def parse_measurements(log: str, count: int) -> list[Measurement]:
    """The ``count`` summaries of a measuring run's log, in stream order."""
    summaries = {
        int(number): Measurement(
            integrated=float(integrated),
            true_peak=float(peak),
            lra=float(lra),
            threshold=float(threshold),
        )
        for number, integrated, threshold, lra, peak in _SUMMARY.findall(log)
    }
    if len(summaries) != count:
        raise RuntimeError(f"ebur128 reported on {len(summaries)} tracks, not {count}")
    return [summaries[number] for number in sorted(summaries)]


def measure(
    inputs: Sequence[str],
    streams: Sequence[str],
    *,
    log_path: Path,
    cancel: threading.Event,
    source_label: str = "",
) -> list[Measurement]:
    """Measure ``streams`` of ``inputs``; Unprocessable when ffmpeg cannot
    decode them, Interrupted when ``cancel`` is set."""
    run_encode(
        measure_command(inputs, streams),
        log_path=log_path,
        cancel=cancel,
        on_position=lambda _seconds: None,
        source_label=source_label,
    )
    return parse_measurements(log_path.read_text(errors="replace"), len(streams))


def normalize_filter(measured: Measurement, target: LoudnessTarget) -> str | None:
    """The second pass for a track measured ``measured``; None for a track
    that is left as it is (silence, or quieter than the floor)."""
    if not measured.audible:
        return None
    gain = target.integrated - measured.integrated
    if measured.true_peak + gain <= target.true_peak:
        return f"{_DOWNMIX},volume={gain:.2f}dB"
    low, high = _LRA_RANGE
    lra = min(high, max(low, math.ceil(measured.lra)))
    return (
        f"{_DOWNMIX},loudnorm=I={target.integrated:g}:TP={target.true_peak:g}"
        f":LRA={lra}:measured_I={measured.integrated:g}"
        f":measured_TP={measured.true_peak:g}:measured_LRA={measured.lra:g}"
        f":measured_thresh={measured.threshold:g}:linear=true"
    )
