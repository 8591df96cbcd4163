"""The composition root: the only place that wires units together.

One stack holds the whole platform. In prod its buckets and table are
retained if the stack is ever deleted, termination protection is on, and the
table and the user pool have deletion protection. A
separate stateful stack was tried and dropped: with the recommended
weak cross-stack references every prefix-scoped grant on a bucket of the
other stack names a hash-named stack output, which cdk-nag 3 can only
acknowledge by its exact text, and an S3 notification from a bucket in one
stack to a function in the other forms a dependency cycle.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Aws, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from cdk_app import compliance
from cdk_app.captions import VideoCaptions
from cdk_app.config import PlatformConfig
from cdk_app.database import VideoTable
from cdk_app.delivery import PlaybackDomain, VideoDelivery
from cdk_app.events import VideoEvents
from cdk_app.functions import PythonLambda
from cdk_app.mediaconvert import MediaConvertTranscoder
from cdk_app.monitoring import Monitoring
from cdk_app.queues import secure_queue
from cdk_app.storage import VideoStorage
from cdk_app.transcoder import FargateTranscoder, TranscodeLimits, WorkerSize
from cdk_app.transcoding import VideoTranscoder
from cdk_app.upload_api import (
    SIGN_IN_SCOPES,
    BrowserSignIn,
    ExternalIssuer,
    UploadApi,
    UploadLimits,
)
from cdk_app.web_app import WebApp
from lambdas.mediaconvert.job import TierPrices
from vod.settings import Env, Transcoder

STACK_NAME = "Vod"
INGEST_HANDLER = "lambdas.ingest.app.handler"


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
        # The page's origin is allowed wherever the knob's origins are: CORS
        # of the buckets, the playback distribution and the API, and the
        # sign-in redirects. Nothing the page's distribution needs depends on
        # them, so there is no cycle.
        self.web_app = WebApp(
            self, "WebApp", access_logs=self.storage.access_logs_bucket
        )
        app_url = self.web_app.url
        browser_origins = [*config.allowed_origins, app_url]
        self.storage.allow_origins([app_url])
        self.videos = VideoTable(
            self,
            "Videos",
            removal_policy=stateful_removal,
            deletion_protection=config.is_prod,
        )
        self.delivery = VideoDelivery(
            self,
            "Delivery",
            storage=self.storage,
            allowed_origins=browser_origins,
            key_group_id=config.key_group_id,
            domain=self._playback_domain(config),
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
                max_uploads_in_flight_per_user=config.max_uploads_in_flight_per_user,
                max_videos_per_user=config.max_videos_per_user,
                record_ttl_days=config.abort_incomplete_uploads_after_days + 1,
            ),
            allowed_origins=browser_origins,
            issuer=(
                ExternalIssuer(issuer=config.issuer, audience=config.jwt_audience or ())
                if config.issuer
                else None
            ),
            sign_in=BrowserSignIn(
                callback_urls=[*config.auth_callback_urls, f"{app_url}/"],
                logout_urls=[*config.auth_logout_urls, f"{app_url}/"],
                domain_prefix=config.auth_domain_prefix or self._default_domain_prefix,
            ),
            playback_base_url=playback,
            removal_policy=stateful_removal,
            deletion_protection=config.is_prod,
        )
        compliance.acknowledge_upload_api(self.upload_api, self.storage)
        deployment = self.web_app.publish(self._page_config(config))
        compliance.acknowledge_web_app(self.web_app, deployment)

        self.transcoder = self._transcoder(config, stateless_removal)
        # The ingest function is the stack's, not the transcoder's: switching
        # `transcoder` updates it and the S3 notification in place.
        self.ingest_function = PythonLambda(
            self,
            "IngestFunction",
            handler=INGEST_HANDLER,
            description="Hands every completed upload to the transcoder",
            environment={
                Env.TABLE_NAME: self.videos.dynamodb_table.table_name,
                Env.MAX_UPLOAD_BYTES: str(config.max_upload_bytes),
                **self.transcoder.ingest_environment,
            },
            removal_policy=stateless_removal,
        )
        # S3 invokes the function asynchronously: an event that still fails
        # after Lambda's two retries would be dropped, leaving its video
        # UPLOADING until the table's TTL deletes the record and orphans the
        # object. It waits here instead, to be replayed (README, Monitoring).
        self.ingest_failures = secure_queue(self, "IngestFailures")
        self.ingest_function.lambda_function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.ingest_failures)
        )
        compliance.acknowledge_ingest_failures(self.ingest_failures)
        self.videos.grant_update_items(self.ingest_function.role)
        self.transcoder.grant_submit(self.ingest_function.role)
        compliance.acknowledge_transcoder(
            self.transcoder, self.storage, submitter=self.ingest_function.role
        )
        self.storage.notify_on_upload(self.ingest_function.lambda_function)
        compliance.acknowledge_bucket_notifications(self)

        self.video_events = VideoEvents(
            self,
            "Events",
            videos=self.videos,
            playback_base_url=playback,
            notification_email=config.events_address,
        )
        compliance.acknowledge_events(self.video_events)
        self.captions = VideoCaptions(
            self,
            "Captions",
            videos=self.videos,
            storage=self.storage,
            auto_captions=config.auto_captions,
        )
        captions_role = self.captions.publisher.role
        self.videos.grant_update_items(captions_role)
        self.storage.grant_publish_captions(captions_role)
        if config.auto_captions:
            # Transcribe reads the original and writes its result with the
            # permissions of the caller that starts the job.
            self.storage.grant_read_uploads(captions_role)
            self.storage.grant_write_captions(captions_role)
        compliance.acknowledge_captions(self.captions, self.storage)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            http_api=self.upload_api.api_gateway_http_api,
            functions=[
                self.upload_api.upload_function,
                self.upload_api.videos_function,
                self.ingest_function,
                self.video_events.publisher,
                self.captions.publisher,
                *self.transcoder.functions,
            ],
            video_events=self.video_events,
            transcoder=self.transcoder,
            ingest_failures=self.ingest_failures,
            alarm_email=config.alarm_address,
        )
        compliance.acknowledge_delivery(self.delivery)
        self._outputs()

    @property
    def _default_domain_prefix(self) -> str:
        """``vod-`` and the UUID of the stack's id: unique across accounts and
        regions, as Cognito wants a prefix to be, and stable for the stack's
        life."""
        return Fn.join("", ["vod-", Fn.select(2, Fn.split("/", Aws.STACK_ID))])

    def _page_config(self, config: PlatformConfig) -> dict[str, Any]:
        """The web app's ``config.json`` (the README's contract): the API, the
        playback origin, the upload limit, and the hosted sign-in endpoints of
        the stack's user pool (none with jwtIssuer: no pool)."""
        page: dict[str, Any] = {
            "apiUrl": self.upload_api.url,
            "playbackUrl": self.delivery.playback_base_url,
            "maxUploadBytes": config.max_upload_bytes,
        }
        client = self.upload_api.user_pool_client
        domain = self.upload_api.user_pool_domain
        if client is not None and domain is not None:
            hosted = domain.base_url()
            page["auth"] = {
                "authorizeUrl": f"{hosted}/oauth2/authorize",
                "tokenUrl": f"{hosted}/oauth2/token",
                "logoutUrl": f"{hosted}/logout",
                "clientId": client.user_pool_client_id,
                "scopes": [scope.scope_name for scope in SIGN_IN_SCOPES],
            }
        return page

    def _playback_domain(self, config: PlatformConfig) -> PlaybackDomain | None:
        if config.domain_name is None or config.certificate_arn is None:
            return None
        return PlaybackDomain(
            name=config.domain_name,
            certificate=acm.Certificate.from_certificate_arn(
                self, "PlaybackCertificate", config.certificate_arn
            ),
        )

    def _transcoder(
        self, config: PlatformConfig, removal_policy: RemovalPolicy
    ) -> VideoTranscoder:
        if config.transcoder is Transcoder.MEDIACONVERT:
            return MediaConvertTranscoder(
                self,
                "Transcoder",
                storage=self.storage,
                videos=self.videos,
                prices=TierPrices(
                    basic_usd_per_minute=config.media_convert_basic_usd_per_minute,
                    pro_usd_per_minute=config.media_convert_pro_usd_per_minute,
                ),
                loudness=config.loudness,
                removal_policy=removal_policy,
            )
        return FargateTranscoder(
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
                hdr_ladder=config.hdr_ladder,
                max_source_minutes=config.max_source_minutes,
                max_frame_size=config.max_frame_size,
                max_frame_rate=config.max_frame_rate,
                job_time_budget_factor=config.job_time_budget_factor,
            ),
            prices=config.fargate_prices,
            loudness=config.loudness,
            max_audio_tracks=config.max_audio_tracks,
            max_receive_count=config.jobs_max_receive_count,
            oldest_job_alarm=Duration.minutes(config.oldest_job_alarm_minutes),
            removal_policy=removal_policy,
        )

    def _outputs(self) -> None:
        CfnOutput(self, "AppUrl", value=self.web_app.url)
        CfnOutput(self, "ApiUrl", value=self.upload_api.url)
        CfnOutput(
            self, "SourceBucketName", value=self.storage.source_bucket.bucket_name
        )
        CfnOutput(
            self, "OutputBucketName", value=self.storage.output_bucket.bucket_name
        )
        CfnOutput(self, "VideoTableName", value=self.videos.dynamodb_table.table_name)
        CfnOutput(self, "IngestFailuresQueueUrl", value=self.ingest_failures.queue_url)
        for output_id, value in self.transcoder.outputs().items():
            CfnOutput(self, output_id, value=value)
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
        domain = self.upload_api.user_pool_domain
        if domain is not None:
            CfnOutput(self, "UserPoolDomainUrl", value=domain.base_url())


def build_platform(app: App, config: PlatformConfig) -> VodStack:
    compliance.enable_compliance_gate(app)
    return VodStack(app, STACK_NAME, config=config)
