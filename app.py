#!/usr/bin/env python3
"""CDK entry point: read the context once, build the platform, synthesize."""

import aws_cdk as cdk

from cdk_app.config import PlatformConfig
from cdk_app.platform import build_platform

app = cdk.App()
build_platform(app, PlatformConfig.from_context(app.node))
app.synth()
