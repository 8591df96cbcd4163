"""The MediaConvert transcoder: an S3 event submits one MediaConvert job per
upload from a job template that mirrors the Fargate ladder, and MediaConvert's
job state changes, through EventBridge, move the video's record."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_mediaconvert as mediaconvert
from constructs import Construct

from cdk_app.database import VideoTable
from cdk_app.functions import PythonLambda
from cdk_app.storage import VideoStorage
from cdk_app.transcoder import INGEST_HANDLER
from lambdas.mediaconvert.job import (
    HANDLED_STATUSES,
    PIPELINE_KEY,
    STATUS_UPDATE_INTERVAL,
    template_settings,
)
from vod.settings import Env, Transcoder

STATUS_HANDLER = "lambdas.mediaconvert.status.handler"
MEDIACONVERT_SERVICE = "mediaconvert.amazonaws.com"
#: Jobs go to the account's on-demand queue, which every account has and
#: which costs nothing while idle.
QUEUE_NAME = "Default"


class MediaConvertTranscoder(Construct):
    """Ingest Lambda -> MediaConvert job -> EventBridge -> status Lambda.

    The job template's name doubles as this stack's mark on its jobs: the
    ingest Lambda puts it in each job's UserMetadata and the EventBridge rule
    matches it, so jobs of other stacks in the account never reach the status
    Lambda. The ladder is the shared default (``vod.ladder``).

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
        max_upload_bytes: int,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.job_template = mediaconvert.CfnJobTemplate(
            self,
            "JobTemplate",
            settings_json=template_settings(),
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

        self.ingest_function = PythonLambda(
            self,
            "IngestFunction",
            handler=INGEST_HANDLER,
            description="Submits one MediaConvert job per completed upload",
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.TRANSCODER: Transcoder.MEDIACONVERT.value,
                Env.MAX_UPLOAD_BYTES: str(max_upload_bytes),
                Env.OUTPUT_BUCKET: storage.output_bucket.bucket_name,
                Env.MEDIACONVERT_ROLE_ARN: self.mediaconvert_role.role_arn,
                Env.MEDIACONVERT_JOB_TEMPLATE: template_name,
            },
            removal_policy=removal_policy,
        )
        videos.grant_update_items(self.ingest_function.role)
        self.grant_submit(self.ingest_function.role)
        storage.notify_on_upload(self.ingest_function.lambda_function)

        self.status_function = PythonLambda(
            self,
            "StatusFunction",
            handler=STATUS_HANDLER,
            description="Moves video records on MediaConvert job state changes",
            environment={Env.TABLE_NAME: videos.dynamodb_table.table_name},
            removal_policy=removal_policy,
        )
        videos.grant_update_items(self.status_function.role)
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
