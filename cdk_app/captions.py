"""Caption tracks: the function that publishes them as the table's records
change and, with automatic captions, the Amazon Transcribe jobs it starts
and the EventBridge rule that brings their results back."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_app.database import VideoTable
from cdk_app.functions import PythonLambda
from cdk_app.queues import secure_queue
from cdk_app.storage import VideoStorage
from lambdas.captions.transcribe import (
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    FINISHED_STATUSES,
    JOB_PREFIX,
)
from vod.settings import Env

CAPTIONS_HANDLER = "lambdas.captions.app.handler"


class VideoCaptions(Construct):
    """The captions function on the table's stream.

    :param auto_captions: Default False. True: the function starts an Amazon
        Transcribe job for each video that reaches READY, and a rule on the
        default bus hands it the job's COMPLETED or FAILED state change.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        videos: VideoTable,
        storage: VideoStorage,
        auto_captions: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.publisher = PythonLambda(
            self,
            # Monitoring names each function's alarms by its id.
            "CaptionsPublisher",
            handler=CAPTIONS_HANDLER,
            description="Publishes caption tracks as HLS subtitle renditions",
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.SOURCE_BUCKET: storage.source_bucket.bucket_name,
                Env.OUTPUT_BUCKET: storage.output_bucket.bucket_name,
                Env.AUTO_CAPTIONS: "true" if auto_captions else "false",
            },
            # One S3 write per 6 s segment: a two-hour track is 1,200.
            timeout=Duration.minutes(5),
        )
        self.failed_batches = secure_queue(self, "UnpublishedBatches")
        videos.feed_stream(self.publisher.lambda_function, failed=self.failed_batches)
        self.transcribe_rule: events.Rule | None = None
        if auto_captions:
            self.transcribe_rule = events.Rule(
                self,
                "TranscribeJobFinished",
                description="Brings finished automatic-caption jobs back",
                event_pattern=events.EventPattern(
                    source=[EVENT_SOURCE],
                    detail_type=[EVENT_DETAIL_TYPE],
                    detail={
                        "TranscriptionJobName": [{"prefix": JOB_PREFIX}],
                        "TranscriptionJobStatus": list(FINISHED_STATUSES),
                    },
                ),
                targets=[targets.LambdaFunction(self.publisher.lambda_function)],
            )
            self.publisher.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=[
                        "transcribe:StartTranscriptionJob",
                        "transcribe:GetTranscriptionJob",
                    ],
                    resources=[
                        Stack.of(self).format_arn(
                            service="transcribe",
                            resource="transcription-job",
                            resource_name=f"{JOB_PREFIX}*",
                        )
                    ],
                )
            )
