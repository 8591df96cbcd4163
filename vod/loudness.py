"""The loudness every audio rendition is normalized to (EBU R128), shared by
the knobs, the worker's two-pass ``loudnorm`` and MediaConvert's template."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

#: Integrated loudness targets (LUFS) both ffmpeg's loudnorm (-70 to -5) and
#: MediaConvert's TargetLkfs (-59 to 0) accept, within what any platform asks
#: for (-31 LUFS is the quietest broadcast norm, -14 the loudest streaming).
TARGET_LUFS_RANGE = (-40.0, -5.0)
#: True-peak ceilings (dBTP) loudnorm (-9 to 0) and MediaConvert's
#: TruePeakLimiterThreshold (-8 to 0) both accept.
TRUE_PEAK_RANGE = (-8.0, 0.0)
#: A track measured quieter than this (LUFS integrated) is silence, hiss or
#: room tone: it is left as it is rather than raised by 34 dB or more.
QUIET_FLOOR_LUFS = -50.0


@dataclasses.dataclass(frozen=True)
class LoudnessTarget:
    """Integrated loudness (LUFS) and true-peak ceiling (dBTP); the default
    is what Apple and most streaming platforms use."""

    integrated: float = -16.0
    true_peak: float = -1.0

    def to_dict(self) -> dict[str, Any]:
        return {"integrated": self.integrated, "truePeak": self.true_peak}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LoudnessTarget:
        return cls(float(raw["integrated"]), float(raw["truePeak"]))


DEFAULT_LOUDNESS = LoudnessTarget()
