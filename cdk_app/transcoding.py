"""The role every transcoder plays: the FFmpeg workers on Fargate and
MediaConvert both implement ``VideoTranscoder``, so that the composition root
wires either one the same way and monitoring reads either one the same way.

A transcoder is built with keyword-only ``storage`` and ``videos`` (and
settings of its own) and grants its own parts what they need from them. It
does not receive uploads itself: the composition root creates the one ingest
function, gives it ``ingest_environment`` and ``grant_submit``, and points the
source bucket's upload notifications at it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam

from cdk_app.functions import PythonLambda


@dataclasses.dataclass(frozen=True)
class AlarmSpec:
    """An alarm that monitoring creates, with its action, for a unit: it
    fires when ``metric`` is above ``threshold`` for one period."""

    construct_id: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str


class VideoTranscoder(Protocol):
    """Turns a queued upload into the HLS ladder and moves its record."""

    @property
    def ingest_environment(self) -> Mapping[str, str]:
        """What the ingest function needs to hand this transcoder an upload
        (``vod.settings.Env`` names)."""
        ...

    def grant_submit(self, grantee: iam.IGrantable) -> None:
        """Let ``grantee`` hand this transcoder an upload, and nothing more."""
        ...

    @property
    def functions(self) -> Sequence[PythonLambda]:
        """The transcoder's own functions, whose errors monitoring alarms on."""
        ...

    def alarms(self) -> Sequence[AlarmSpec]:
        """Alarms on the transcoder's own health, beyond its functions' errors."""
        ...

    def dashboard_widgets(self) -> Sequence[cloudwatch.IWidget]:
        """One dashboard row about the transcoder (empty: no row)."""
        ...

    def outputs(self) -> Mapping[str, str]:
        """Stack outputs, by output id: what an operator looks up."""
        ...
