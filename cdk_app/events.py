"""Lifecycle events: the table's stream feeds one publisher that puts
UPLOADED, READY and FAILED on an EventBridge bus (schema in vod/events.py),
where users attach webhooks, queues or notifications."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from cdk_app.database import VideoTable
from cdk_app.functions import PythonLambda
from cdk_app.queues import secure_queue
from vod.events import DETAIL_TYPE, METRICS_NAMESPACE, SOURCE, STATUS_METRICS
from vod.model import Status
from vod.settings import Env

PUBLISHER_HANDLER = "lambdas.events.app.handler"
HOUR = Duration.hours(1)


class VideoEvents(Construct):
    """The event bus and its publisher.

    :param playback_base_url: prefix of the playback URLs in READY events.
    :param notification_email: Default None. An address that receives every
        event through an SNS topic (the subscription must be confirmed).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        videos: VideoTable,
        playback_base_url: str,
        notification_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.event_bus = events.EventBus(
            self, "Bus", description="Video lifecycle events (vod.platform)"
        )
        self.publisher = PythonLambda(
            self,
            "Publisher",
            handler=PUBLISHER_HANDLER,
            description="Publishes UPLOADED, READY and FAILED from the table stream",
            environment={
                Env.EVENT_BUS_NAME: self.event_bus.event_bus_name,
                Env.PLAYBACK_BASE_URL: playback_base_url,
            },
        )
        self.event_bus.grant_put_events_to(self.publisher.role)
        self.failed_batches = secure_queue(self, "UnpublishedBatches")
        videos.feed_stream(self.publisher.lambda_function, failed=self.failed_batches)

        self.topic: sns.Topic | None = None
        if notification_email:
            key = kms.Key(
                self,
                "TopicKey",
                enable_key_rotation=True,
                description="Encrypts the video events topic",
            )
            self.topic = sns.Topic(
                self, "Topic", master_key=key, enforce_ssl=True, display_name="Videos"
            )
            self.topic.add_subscription(
                subscriptions.EmailSubscription(notification_email)
            )
            events.Rule(
                self,
                "ToTopic",
                event_bus=self.event_bus,
                event_pattern=events.EventPattern(
                    source=[SOURCE], detail_type=[DETAIL_TYPE]
                ),
                targets=[targets.SnsTopic(self.topic)],
            )
            # EventBridge encrypts what it delivers to the topic with this key.
            key.grant_encrypt_decrypt(iam.ServicePrincipal("events.amazonaws.com"))

    def metric_videos(
        self, status: Status, period: Duration = HOUR
    ) -> cloudwatch.Metric:
        """Videos that reached READY or FAILED, counted by the publisher."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=STATUS_METRICS[status],
            statistic="Sum",
            period=period,
            label=f"Videos {str(status).lower()}",
        )
