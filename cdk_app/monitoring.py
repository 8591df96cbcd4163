"""Operations: one dashboard and the alarms that page someone, built only
from the other constructs' ``metric_*`` methods."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.events import VideoEvents
from cdk_app.functions import PythonLambda
from cdk_app.transcoding import AlarmSpec, VideoTranscoder
from vod.model import Status

FIVE_MINUTES = Duration.minutes(5)
#: Alarm when more than this share of API requests fail on the server side.
API_5XX_RATE_PERCENT = 1


class Monitoring(Construct):
    """A dashboard and alarms, all to one SNS topic.

    Alarms: the API's 5xx rate is above 1 % over 5 minutes; any function
    reports an error; an upload's event waits in ``ingest_failures``; and
    whatever the transcoder names about its own health.

    :param functions: every function of the platform, the transcoder's too.
    :param ingest_failures: the ingest function's on-failure destination,
        where S3 events it failed for good wait to be replayed.
    :param alarm_email: Default None. An address subscribed to the alarms
        topic (the subscription must be confirmed).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        http_api: apigwv2.HttpApi,
        functions: Sequence[PythonLambda],
        video_events: VideoEvents,
        transcoder: VideoTranscoder,
        ingest_failures: sqs.IQueue,
        alarm_email: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(
            self, "AlarmsKey", enable_key_rotation=True, description="Encrypts alarms"
        )
        # CloudWatch publishes alarm notifications to the encrypted topic.
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            master_key=key,
            enforce_ssl=True,
            display_name="VOD alarms",
        )
        if alarm_email:
            self.alarm_topic.add_subscription(
                subscriptions.EmailSubscription(alarm_email)
            )
        self.alarms: list[cloudwatch.Alarm] = []

        requests = http_api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        server_errors = http_api.metric_server_error(
            period=FIVE_MINUTES, statistic="Sum"
        )
        error_rate = cloudwatch.MathExpression(
            expression="100 * errors / MAX([requests, 1])",
            using_metrics={"errors": server_errors, "requests": requests},
            period=FIVE_MINUTES,
            label="API 5xx rate (%)",
        )
        self._alarm(
            AlarmSpec(
                "Api5xxRate",
                error_rate,
                threshold=API_5XX_RATE_PERCENT,
                description=f"Over {API_5XX_RATE_PERCENT}% of API requests got a 5xx",
            )
        )
        for function in functions:
            name = function.node.id
            self._alarm(
                AlarmSpec(
                    f"{name}Errors",
                    function.lambda_function.metric_errors(period=FIVE_MINUTES),
                    threshold=0,
                    description=f"{name} reported errors",
                )
            )
        # Nothing consumes the queue: a message waits until someone replays it.
        self._alarm(
            AlarmSpec(
                "IngestFailed",
                ingest_failures.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                threshold=0,
                description=(
                    "The ingest function failed an upload's S3 event after "
                    "Lambda's retries: its video is not queued. The event "
                    "waits in the ingest failures queue to be replayed (README, "
                    "Monitoring) before an UPLOADING record expires"
                ),
            )
        )
        for spec in transcoder.alarms():
            self._alarm(spec)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", period_override=None)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    requests,
                    http_api.metric_client_error(period=FIVE_MINUTES, statistic="Sum"),
                    server_errors,
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API latency",
                left=[
                    http_api.metric_latency(period=FIVE_MINUTES, statistic="p50"),
                    http_api.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Videos per hour",
                left=[
                    video_events.metric_videos(Status.READY),
                    video_events.metric_videos(Status.FAILED),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[
                    m
                    for f in functions
                    for m in (
                        f.lambda_function.metric_errors(period=FIVE_MINUTES),
                        f.lambda_function.metric_throttles(period=FIVE_MINUTES),
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration (p99)",
                left=[
                    f.lambda_function.metric_duration(
                        period=FIVE_MINUTES, statistic="p99"
                    )
                    for f in functions
                ],
                width=12,
            ),
        )
        transcoding = transcoder.dashboard_widgets()
        if transcoding:
            self.dashboard.add_widgets(*transcoding)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(alarms=self.alarms, title="Alarms", width=24)
        )

    def _alarm(self, spec: AlarmSpec) -> None:
        alarm = cloudwatch.Alarm(
            self,
            spec.construct_id,
            metric=spec.metric,
            threshold=spec.threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=spec.description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.alarm_topic))
        self.alarms.append(alarm)
