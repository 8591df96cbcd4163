"""The composition root: the only place that wires units together."""

from __future__ import annotations

import dataclasses

from aws_cdk import App, RemovalPolicy, Stack
from constructs import Construct

from cdk_app import compliance
from cdk_app.config import PlatformConfig
from cdk_app.database import VideoTable
from cdk_app.storage import VideoStorage


class DataStack(Stack):
    """Stateful resources: buckets and table. Deployed separately so that the
    stateless service can be replaced without touching stored videos."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: PlatformConfig
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Video-on-demand platform: buckets and video table",
            termination_protection=config.is_prod,
        )
        removal = RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY
        self.storage = VideoStorage(
            self,
            "Storage",
            allowed_origins=config.allowed_origins,
            abort_incomplete_uploads_after_days=config.abort_incomplete_uploads_after_days,
            originals_transition_after_days=config.originals_transition_after_days,
            removal_policy=removal,
        )
        self.videos = VideoTable(self, "Videos", removal_policy=removal)


@dataclasses.dataclass(frozen=True)
class Platform:
    data: DataStack


def build_platform(app: App, config: PlatformConfig) -> Platform:
    compliance.enable_compliance_gate(app)
    data = DataStack(app, "VodData", config=config)
    return Platform(data=data)
