"""One way to deploy our Python Lambdas: the shared code asset, an own role
with only what the caller grants, and a log group with a retention period."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

ROOT = Path(__file__).resolve().parent.parent
#: The deployed code is exactly `lambdas/` and `vod/`; the handler strings are
#: dotted module paths inside it (``lambdas.upload_api.app.handler``).
LAMBDA_ASSET_EXCLUDE = ["*", "!lambdas", "!vod", "**/__pycache__", "**/*.pyc"]
RUNTIME = lambda_.Runtime.PYTHON_3_14
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
#: API Gateway gives up on an integration after 30 s.
API_TIMEOUT = Duration.seconds(29)


def lambda_code() -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(ROOT), ignore_mode=IgnoreMode.DOCKER, exclude=LAMBDA_ASSET_EXCLUDE
    )


class PythonLambda(Construct):
    """A function from the shared asset.

    Its role starts with no permissions at all (not even the managed basic
    execution policy): it may write only to its own log group, and everything
    else comes from the ``grant_*`` calls of the composition root.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        environment: Mapping[str, str],
        description: str,
        timeout: Duration = API_TIMEOUT,
        memory_size: int = 512,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=LOG_RETENTION, removal_policy=removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs {handler}",
        )
        self.lambda_function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_code(),
            handler=handler,
            environment=dict(environment),
            description=description,
            timeout=timeout,
            memory_size=memory_size,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        self.log_group.grant_write(self.role)
