"""The composition root: the only place that wires units together.

One stack holds the whole platform. In prod its buckets and table are
retained if the stack is ever deleted, and termination protection is on. A
separate stateful stack was tried and dropped: with the recommended
weak cross-stack references every prefix-scoped grant on a bucket of the
other stack names a hash-named stack output, which cdk-nag 3 can only
acknowledge by its exact text, and an S3 notification from a bucket in one
stack to a function in the other forms a dependency cycle.
"""

from __future__ import annotations

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from constructs import Construct

from cdk_app import compliance
from cdk_app.config import PlatformConfig
from cdk_app.database import VideoTable
from cdk_app.delivery import VideoDelivery
from cdk_app.events import VideoEvents
from cdk_app.mediaconvert import MediaConvertTranscoder
from cdk_app.monitoring import Monitoring
from cdk_app.storage import VideoStorage
from cdk_app.transcoder import FargateTranscoder, TranscodeLimits, WorkerSize
from cdk_app.upload_api import ExternalIssuer, UploadApi, UploadLimits
from vod.settings import Transcoder

STACK_NAME = "Vod"


class VodStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: PlatformConfig
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Video-on-demand platform: uploads, transcoding, playback",
            termination_protection=config.is_prod,
        )
        stateful_removal = (
            RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY
        )
        stateless_removal = RemovalPolicy.DESTROY
        self.storage = VideoStorage(
            self,
            "Storage",
            allowed_origins=config.allowed_origins,
            abort_incomplete_uploads_after_days=config.abort_incomplete_uploads_after_days,
            originals_transition_after_days=config.originals_transition_after_days,
            removal_policy=stateful_removal,
        )
        self.videos = VideoTable(self, "Videos", removal_policy=stateful_removal)
        self.delivery = VideoDelivery(
            self,
            "Delivery",
            storage=self.storage,
            allowed_origins=config.allowed_origins,
            key_group_id=config.key_group_id,
        )
        playback = self.delivery.playback_base_url

        self.upload_api = UploadApi(
            self,
            "UploadApi",
            storage=self.storage,
            videos=self.videos,
            limits=UploadLimits(
                max_upload_bytes=config.max_upload_bytes,
                min_part_size_mib=config.min_part_size_mib,
                allowed_content_types=config.allowed_content_types,
                presign_expiry_seconds=config.presign_expiry_seconds,
                record_ttl_days=config.abort_incomplete_uploads_after_days + 1,
            ),
            allowed_origins=config.allowed_origins,
            issuer=(
                ExternalIssuer(issuer=config.issuer, audience=config.jwt_audience or ())
                if config.issuer
                else None
            ),
            playback_base_url=playback,
            removal_policy=stateful_removal,
        )
        compliance.acknowledge_upload_api(self.upload_api, self.storage)

        # One construct id in both modes, so that switching modes updates the
        # ingest function and its S3 notification in place.
        self.transcoder: FargateTranscoder | MediaConvertTranscoder
        if config.transcoder is Transcoder.MEDIACONVERT:
            self.transcoder = MediaConvertTranscoder(
                self,
                "Transcoder",
                storage=self.storage,
                videos=self.videos,
                max_upload_bytes=config.max_upload_bytes,
                removal_policy=stateless_removal,
            )
            compliance.acknowledge_mediaconvert(self.transcoder, self.storage)
        else:
            self.transcoder = FargateTranscoder(
                self,
                "Transcoder",
                storage=self.storage,
                videos=self.videos,
                size=WorkerSize(
                    cpu=config.worker_cpu,
                    memory_mib=config.worker_memory_mib,
                    architecture=config.worker_architecture,
                    ephemeral_storage_gib=config.worker_ephemeral_storage_gib,
                    max_tasks=config.worker_max_tasks,
                    spot_percent=config.worker_spot_percent,
                ),
                limits=TranscodeLimits(
                    chunk_seconds=config.chunk_seconds,
                    max_source_minutes=config.max_source_minutes,
                    max_frame_size=config.max_frame_size,
                    max_frame_rate=config.max_frame_rate,
                    job_time_budget_factor=config.job_time_budget_factor,
                ),
                prices=config.fargate_prices,
                max_upload_bytes=config.max_upload_bytes,
                max_receive_count=config.jobs_max_receive_count,
                removal_policy=stateless_removal,
            )
            compliance.acknowledge_transcoder(self.transcoder, self.storage)
        compliance.acknowledge_bucket_notifications(self)

        self.video_events = VideoEvents(
            self,
            "Events",
            videos=self.videos,
            playback_base_url=playback,
            notification_email=config.events_address,
        )
        compliance.acknowledge_events(self.video_events)
        functions = [
            self.upload_api.upload_function,
            self.upload_api.videos_function,
            self.transcoder.ingest_function,
            self.video_events.publisher,
        ]
        fargate = (
            self.transcoder if isinstance(self.transcoder, FargateTranscoder) else None
        )
        if isinstance(self.transcoder, MediaConvertTranscoder):
            functions.append(self.transcoder.status_function)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            http_api=self.upload_api.api_gateway_http_api,
            functions=functions,
            video_events=self.video_events,
            jobs_queue=fargate.jobs_queue if fargate else None,
            dead_letter_queue=fargate.dead_letter_queue if fargate else None,
            worker_service=fargate.fargate_service if fargate else None,
            oldest_job_alarm=Duration.minutes(config.oldest_job_alarm_minutes),
            alarm_email=config.alarm_address,
        )
        compliance.acknowledge_delivery(self.delivery)
        self._outputs()

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.upload_api.url)
        CfnOutput(
            self, "SourceBucketName", value=self.storage.source_bucket.bucket_name
        )
        CfnOutput(
            self, "OutputBucketName", value=self.storage.output_bucket.bucket_name
        )
        CfnOutput(self, "VideoTableName", value=self.videos.dynamodb_table.table_name)
        if isinstance(self.transcoder, FargateTranscoder):
            CfnOutput(self, "JobsQueueUrl", value=self.transcoder.jobs_queue.queue_url)
        else:
            CfnOutput(
                self,
                "MediaConvertJobTemplateName",
                value=self.transcoder.job_template.attr_name,
            )
        CfnOutput(
            self,
            "DistributionDomainName",
            value=self.delivery.cloudfront_distribution.distribution_domain_name,
        )
        CfnOutput(
            self, "EventBusName", value=self.video_events.event_bus.event_bus_name
        )
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.alarm_topic.topic_arn)
        pool, client = self.upload_api.user_pool, self.upload_api.user_pool_client
        if pool is not None and client is not None:
            CfnOutput(self, "UserPoolId", value=pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=client.user_pool_client_id)


def build_platform(app: App, config: PlatformConfig) -> VodStack:
    compliance.enable_compliance_gate(app)
    return VodStack(app, STACK_NAME, config=config)
