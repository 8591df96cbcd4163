"""The compliance gate and every acknowledgement of it, in one place.

``enable_compliance_gate`` applies cdk-nag's AwsSolutions pack to the whole
app: any finding that is not acknowledged here fails synth. Each
acknowledgement names one finding on one construct and says why it is true.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def enable_compliance_gate(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def _acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))
