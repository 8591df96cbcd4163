"""What one video's transcode cost, as the READY record reports it.

Fargate bills a task's size (vCPU and memory) for the seconds it runs, so a
job's share is its wall time on the task at the task's size; the worker
measures that wall time and the CPU time ffmpeg used, summed over the job's
tasks. MediaConvert bills normalized output minutes: each output's minutes
times a factor for its resolution and frame rate, at the price of the tier
the job ran in (accelerated transcoding bills the Professional tier).

Default prices are AWS's published on-demand list prices in us-east-1; the
stack's price knobs replace them for other regions and agreements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

#: Fargate on-demand, Linux, us-east-1: USD per vCPU-hour and per GB-hour.
FARGATE_LIST_PRICES = {
    "x86_64": (0.04048, 0.004445),
    "arm64": (0.03238, 0.00356),
}
#: MediaConvert on-demand, first volume tier, us-east-1: USD per normalized
#: minute in the Basic and the Professional tier.
MEDIACONVERT_BASIC_USD_PER_MINUTE = 0.0075
MEDIACONVERT_PRO_USD_PER_MINUTE = 0.012


@dataclasses.dataclass(frozen=True)
class FargatePrices:
    usd_per_vcpu_hour: float
    usd_per_gb_hour: float

    @classmethod
    def list_price(cls, architecture: str) -> FargatePrices:
        vcpu, gb = FARGATE_LIST_PRICES[architecture]
        return cls(vcpu, gb)


def fargate_cost(
    *,
    cpu_seconds: float,
    wall_seconds: float,
    task_vcpu: float,
    task_memory_gib: float,
    prices: FargatePrices,
) -> dict[str, Any]:
    """The record's ``cost`` for a job that kept tasks of the given size busy
    for ``wall_seconds`` in all."""
    hourly = task_vcpu * prices.usd_per_vcpu_hour + (
        task_memory_gib * prices.usd_per_gb_hour
    )
    return {
        "cpuSeconds": round(cpu_seconds, 1),
        "wallSeconds": round(wall_seconds, 1),
        "usd": round(wall_seconds / 3600 * hourly, 6),
        "basis": (
            f"Fargate task of {task_vcpu:g} vCPU and {task_memory_gib:g} GB at "
            f"${prices.usd_per_vcpu_hour}/vCPU-hour and "
            f"${prices.usd_per_gb_hour}/GB-hour, for its wall time"
        ),
    }


@dataclasses.dataclass(frozen=True)
class Output:
    """One video output of a MediaConvert job."""

    width: int
    height: int
    frame_rate: float
    seconds: float


def normalized_minutes(outputs: Iterable[Output]) -> float:
    """MediaConvert's normalized minutes: SD counts once, HD (720 lines or
    more) twice, UHD (2160 or more) four times; above 30 fps doubles it.
    Audio-only outputs are left out."""
    total = 0.0
    for output in outputs:
        lines = min(output.width, output.height)
        factor = 4 if lines >= 2160 else 2 if lines >= 720 else 1
        if output.frame_rate > 30:
            factor *= 2
        total += output.seconds / 60 * factor
    return total


def mediaconvert_cost(
    outputs: Iterable[Output], *, usd_per_minute: float, tier: str
) -> dict[str, Any]:
    minutes = normalized_minutes(outputs)
    return {
        "normalizedMinutes": round(minutes, 3),
        "usd": round(minutes * usd_per_minute, 6),
        "basis": (
            f"MediaConvert {tier} tier at ${usd_per_minute} per normalized minute"
        ),
    }
