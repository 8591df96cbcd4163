"""How close each rung is to the source: its PSNR over one GOP in every
``SCORE_EVERY_GOPS``, the same GOPs of the video whether it is encoded in
one run or in chunks, so that both modes do the same scoring work and a
chunked video's score is its chunks' scores added up frame by frame.

A scored GOP is decoded from each rung (one ``moof``/``mdat`` of its
segment, after the init) and from the source (a seek to its first frame,
through the encode's own graph), and compared frame by frame (ffmpeg's
``psnr`` filter: the mean squared error over Y, U and V, weighted by their
sizes). PSNR, not SSIM or VMAF: it is the cheapest of the three, and
Debian's ffmpeg has no libvmaf. An HDR rung is compared with the source's
10-bit picture, its error scaled to 8-bit's, so that its PSNR reads as an
SDR rung's does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from vod.plan import TranscodePlan
from worker import fmp4
from worker.encode import score_command
from worker.renditions import Rendition

#: One GOP (2 s) in fifteen is scored, 2 s of every 30 s. Scoring a GOP of
#: every rung costs about half the CPU of encoding it (measured on a 1080p30
#: source, default ladder, veryfast: 1.97 against 4.05 CPU seconds), so this
#: adds about 3 % to an encode.
SCORE_EVERY_GOPS = 15
#: What a frame equal to its source scores, instead of infinity.
MAX_PSNR = 100.0
#: The peak sample value PSNR is stated against: 8-bit's. A 10-bit HDR
#: rung's errors are scaled down to it.
_PEAK = 255
_PEAK_10_BIT = 1023


@dataclasses.dataclass(frozen=True)
class Score:
    """Frames compared and the sum of their mean squared errors."""

    frames: int = 0
    squared_error: float = 0.0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.frames + other.frames, self.squared_error + other.squared_error
        )

    @property
    def psnr(self) -> float | None:
        """dB over every frame scored, from their mean error (as ffmpeg's
        ``psnr`` reports its average); None when nothing was scored."""
        if not self.frames:
            return None
        mean = self.squared_error / self.frames
        if mean <= 0:
            return MAX_PSNR
        return round(min(MAX_PSNR, 10 * math.log10(_PEAK**2 / mean)), 2)

    def to_list(self) -> list[float]:
        return [self.frames, self.squared_error]

    @classmethod
    def from_list(cls, raw: Sequence[float]) -> Score:
        return cls(int(raw[0]), float(raw[1]))


def scored_gops(first: int, count: int) -> list[int]:
    """The GOPs to score among ``count`` from number ``first`` of the video."""
    start = -(-first // SCORE_EVERY_GOPS) * SCORE_EVERY_GOPS
    return list(range(start, first + count, SCORE_EVERY_GOPS))


def parse_stats(text: str, *, peak: int = _PEAK) -> Score:
    """A Score from the lines of a ``psnr`` stats file (``n:1 mse_avg:0.92
    mse_y:...``) of samples up to ``peak``."""
    scale = (_PEAK / peak) ** 2
    errors = []
    for line in text.splitlines():
        fields = dict(f.split(":", 1) for f in line.split() if ":" in f)
        if "mse_avg" in fields:
            errors.append(float(fields["mse_avg"]) * scale)
    return Score(len(errors), sum(errors))


def score_rungs(
    source: str,
    plan: TranscodePlan,
    rungs: Sequence[Rendition],
    *,
    first_gop: int,
    work_dir: Path,
    run: Callable[[list[str]], None],
) -> dict[str, Score]:
    """Each rung's Score over the scored GOPs among its own, which start at
    GOP ``first_gop`` of the video; ``run`` runs an ffmpeg command.
    ``rungs`` are the plan's video rungs in its order (SDR, then HDR)."""
    hdr = {variant.name for variant in plan.hdr_variants}
    scores = {rung.name: Score() for rung in rungs}
    gops = len(rungs[0].iframes) if rungs else 0
    work_dir.mkdir(exist_ok=True)
    for gop in scored_gops(first_gop, gops):
        files = [
            _gop_file(rung, gop - first_gop, work_dir / f"{rung.name}.mp4")
            for rung in rungs
        ]
        stats = [work_dir / f"{rung.name}.psnr" for rung in rungs]
        run(score_command(source, plan, gop, files, stats))
        for rung, path in zip(rungs, stats, strict=True):
            peak = _PEAK_10_BIT if rung.name in hdr else _PEAK
            scores[rung.name] += parse_stats(path.read_text(), peak=peak)
    return scores


def _gop_file(rendition: Rendition, index: int, path: Path) -> Path:
    """The rendition's GOP ``index`` (from its first) as a file of its own:
    the init segment and the GOP's fragment."""
    keyframe = rendition.iframes[index]
    segment = (rendition.folder / keyframe.uri).read_bytes()
    fragment = next(
        f
        for f in fmp4.fragments(segment)
        if keyframe.byte_range and f.start == keyframe.byte_range[1]
    )
    init = (rendition.folder / rendition.init).read_bytes()
    path.write_bytes(init + segment[fragment.start : fragment.end])
    return path
