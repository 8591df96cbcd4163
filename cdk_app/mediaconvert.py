"""The MediaConvert transcoder: the ingest function submits one MediaConvert
job per upload from a job template that mirrors the Fargate ladder, and
MediaConvert's job state changes, through EventBridge, move the video's
record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_mediaconvert as mediaconvert
from constructs import Construct

from cdk_app.database import VideoTable
from cdk_app.functions import PythonLambda
from cdk_app.storage import VideoStorage
from cdk_app.transcoding import AlarmSpec
from lambdas.mediaconvert.job import (
    HANDLED_STATUSES,
    LIST_PRICES,
    PIPELINE_KEY,
    STATUS_UPDATE_INTERVAL,
    TierPrices,
    template_settings,
)
from vod.loudness import DEFAULT_LOUDNESS, LoudnessTarget
from vod.settings import Env, Transcoder, loudness_environment

STATUS_HANDLER = "lambdas.mediaconvert.status.handler"
MEDIACONVERT_SERVICE = "mediaconvert.amazonaws.com"
#: Jobs go to the account's on-demand queue, which every account has and
#: which costs nothing while idle.
QUEUE_NAME = "Default"


class MediaConvertTranscoder(Construct):
    """MediaConvert job -> EventBridge -> status Lambda; a ``VideoTranscoder``.

    The job template's name doubles as this stack's mark on its jobs: the
    ingest Lambda puts it in each job's UserMetadata and the EventBridge rule
    matches it, so jobs of other stacks in the account never reach the status
    Lambda. The ladder is the shared default (``vod.ladder``).

    :param prices: Default the us-east-1 list prices. USD per normalized
        minute in the Basic and the Professional tier, for the READY
        record's cost.
    :param loudness: Default -16 LUFS, -1 dBTP. What the jobs normalize the
        audio to; None leaves the audio's loudness as it is.
    :param removal_policy: Default DESTROY. What happens to the functions'
        log groups when the stack is deleted.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: VideoStorage,
        videos: VideoTable,
        prices: TierPrices = LIST_PRICES,
        loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.job_template = mediaconvert.CfnJobTemplate(
            self,
            "JobTemplate",
            settings_json=template_settings(loudness=loudness),
            description="fMP4 HLS ladder and poster, as the FFmpeg workers make",
            status_update_interval=STATUS_UPDATE_INTERVAL,
        )
        template_name = self.job_template.attr_name

        self.mediaconvert_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal(MEDIACONVERT_SERVICE),
            description="MediaConvert reads uploads and writes HLS outputs",
        )
        storage.grant_read_uploads(self.mediaconvert_role)
        storage.grant_write_outputs(self.mediaconvert_role)

        self._output_bucket = storage.output_bucket
        self._loudness = loudness

        self.status_function = PythonLambda(
            self,
            "StatusFunction",
            handler=STATUS_HANDLER,
            description="Moves video records on MediaConvert job state changes",
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.MEDIACONVERT_BASIC_USD_PER_MINUTE: str(prices.basic_usd_per_minute),
                Env.MEDIACONVERT_PRO_USD_PER_MINUTE: str(prices.pro_usd_per_minute),
            },
            removal_policy=removal_policy,
        )
        videos.grant_update_items(self.status_function.role)
        # A finished job's tier, for its cost: the events do not carry it.
        iam.Grant.add_to_principal(
            grantee=self.status_function.role,
            actions=["mediaconvert:GetJob"],
            resource_arns=[self.job_arn_pattern],
        )
        self.job_state_rule = events.Rule(
            self,
            "JobStateRule",
            description="State changes of this stack's MediaConvert jobs",
            event_pattern=events.EventPattern(
                source=["aws.mediaconvert"],
                detail_type=["MediaConvert Job State Change"],
                detail={
                    "status": list(HANDLED_STATUSES),
                    "userMetadata": {PIPELINE_KEY: [template_name]},
                },
            ),
            targets=[targets.LambdaFunction(self.status_function.lambda_function)],
        )

    # --- VideoTranscoder ---------------------------------------------------

    @property
    def ingest_environment(self) -> Mapping[str, str]:
        return {
            Env.TRANSCODER: Transcoder.MEDIACONVERT.value,
            Env.OUTPUT_BUCKET: self._output_bucket.bucket_name,
            Env.MEDIACONVERT_ROLE_ARN: self.mediaconvert_role.role_arn,
            Env.MEDIACONVERT_JOB_TEMPLATE: self.job_template.attr_name,
            **loudness_environment(self._loudness),
        }

    def grant_submit(self, grantee: iam.IGrantable) -> None:
        """CreateJob from this construct's template on the default queue, and
        handing MediaConvert its service role (and only that role, only to
        MediaConvert)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["mediaconvert:CreateJob"],
            resource_arns=[
                self.job_arn_pattern,
                self.job_template.attr_arn,
                self.queue_arn,
            ],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["iam:PassRole"],
            resource_arns=[self.mediaconvert_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": MEDIACONVERT_SERVICE}},
        )

    @property
    def functions(self) -> Sequence[PythonLambda]:
        return (self.status_function,)

    def alarms(self) -> Sequence[AlarmSpec]:
        """None beyond the status function's errors: a failed job fails its
        video, which the lifecycle events report."""
        return ()

    def dashboard_widgets(self) -> Sequence[cloudwatch.IWidget]:
        return ()

    def outputs(self) -> Mapping[str, str]:
        return {"MediaConvertJobTemplateName": self.job_template.attr_name}

    # --- its parts ------------------------------------------------------------

    @property
    def queue_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="mediaconvert", resource="queues", resource_name=QUEUE_NAME
        )

    @property
    def job_arn_pattern(self) -> str:
        """Every job of the account (ids are assigned at submission, so IAM
        can only name a new job with a wildcard)."""
        return Stack.of(self).format_arn(
            service="mediaconvert", resource="jobs", resource_name="*"
        )
