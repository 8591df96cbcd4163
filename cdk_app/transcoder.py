"""The Fargate transcoder: the ingest function queues one job per upload, and
FFmpeg workers on Fargate, scaled from zero on the queue's backlog, turn each
job into an adaptive HLS ladder."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_app.config import Architecture
from cdk_app.database import VideoTable
from cdk_app.functions import LOG_RETENTION, ROOT, PythonLambda
from cdk_app.queues import secure_queue
from cdk_app.storage import VideoStorage
from cdk_app.transcoding import AlarmSpec
from vod.costs import FargatePrices
from vod.loudness import DEFAULT_LOUDNESS, LoudnessTarget
from vod.settings import Env, FrameSize, Transcoder, loudness_environment

WORKER_DOCKERFILE = "containers/ffmpeg/Dockerfile"
DEAD_JOBS_HANDLER = "lambdas.dead_jobs.app.handler"
#: Each message is one read and at most one write of a record.
DEAD_JOBS_TIMEOUT = Duration.seconds(30)
#: Lambda's advice for a queue it polls: a visibility timeout of six times
#: the function's timeout, so that a retried batch is not seen twice at once.
DEAD_LETTER_VISIBILITY = Duration.seconds(6 * 30)
#: The image's build context is the repository root, narrowed to what the
#: Dockerfile copies: the worker and the shared `vod` package.
WORKER_IMAGE_EXCLUDE = [
    "*",
    "!containers/ffmpeg",
    "!vod",
    "**/__pycache__",
    "**/*.pyc",
]
#: The worker extends a message's visibility, and renews its task's lease,
#: every HEARTBEAT by VISIBILITY; the queue's own timeout covers the gap
#: before the first beat. A dead worker's job reappears, and its lease runs
#: out, at most VISIBILITY after its last beat: within a minute.
HEARTBEAT = Duration.seconds(20)
VISIBILITY = Duration.seconds(60)
#: Fargate's ceiling for the SIGTERM-to-SIGKILL grace period. The worker
#: gives up a job 20 s before it, to release the message in time.
STOP_TIMEOUT = Duration.seconds(120)
WORKER_STOP_SECONDS = 100
DEFAULT_OLDEST_JOB_ALARM = Duration.minutes(30)


@dataclasses.dataclass(frozen=True)
class WorkerSize:
    """Task size and placement; see the README's knob table for defaults."""

    cpu: int = 2048
    memory_mib: int = 4096
    architecture: Architecture = Architecture.X86_64
    ephemeral_storage_gib: int = 50
    max_tasks: int = 10
    spot_percent: int = 0


@dataclasses.dataclass(frozen=True)
class TranscodeLimits:
    """What the workers accept, how they split it, how long they may take and
    whether they keep HDR; see the README's knob table."""

    chunk_seconds: int
    max_source_minutes: int
    max_frame_size: FrameSize
    max_frame_rate: int
    job_time_budget_factor: float
    #: Whether HDR sources also get the HDR ladder (HEVC Main 10).
    hdr_ladder: bool = False


class FargateTranscoder(Construct):
    """Jobs queue (+DLQ) -> FFmpeg workers on Fargate; a ``VideoTranscoder``.

    :param loudness: Default -16 LUFS, -1 dBTP. What the workers normalize
        every audio track to; None leaves the audio's loudness as it is.
    :param max_audio_tracks: Default 4. A source's first this many audio
        tracks become audio renditions.
    :param max_receive_count: Default 3. Deliveries of one job before it moves
        to the dead-letter queue (known-bad inputs never get there: the worker
        marks them FAILED and deletes the message).
    :param oldest_job_alarm: Default 30 minutes. Alarm when a job has waited
        this long for a worker.
    :param removal_policy: Default DESTROY. What happens to the log groups
        when the stack is deleted.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: VideoStorage,
        videos: VideoTable,
        size: WorkerSize,
        limits: TranscodeLimits,
        prices: FargatePrices,
        loudness: LoudnessTarget | None = DEFAULT_LOUDNESS,
        max_audio_tracks: int = 4,
        max_receive_count: int = 3,
        oldest_job_alarm: Duration = DEFAULT_OLDEST_JOB_ALARM,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.max_receive_count = max_receive_count
        self.oldest_job_alarm = oldest_job_alarm
        self.dead_letter_queue = secure_queue(
            self, "JobsDeadLetterQueue", visibility_timeout=DEAD_LETTER_VISIBILITY
        )
        self.jobs_queue = secure_queue(
            self,
            "JobsQueue",
            retention=Duration.days(4),
            visibility_timeout=VISIBILITY,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
        )
        # A dead-lettered job's video would stay PROCESSING forever: no job
        # for its task is left. This consumer fails it, with the reason.
        self.dead_jobs_function = PythonLambda(
            self,
            "DeadJobsFunction",
            handler=DEAD_JOBS_HANDLER,
            description="Fails the video of each dead-lettered transcode job",
            environment={Env.TABLE_NAME: videos.dynamodb_table.table_name},
            timeout=DEAD_JOBS_TIMEOUT,
            removal_policy=removal_policy,
        )
        videos.grant_read_items(self.dead_jobs_function.role)
        videos.grant_update_items(self.dead_jobs_function.role)
        self.dead_jobs_function.lambda_function.add_event_source(
            sources.SqsEventSource(
                self.dead_letter_queue, batch_size=10, report_batch_item_failures=True
            )
        )

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Workers", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                )
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.S3
                ),
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
            },
        )
        self.vpc.add_flow_log(
            "FlowLogs",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(
                    self,
                    "FlowLogsGroup",
                    retention=LOG_RETENTION,
                    removal_policy=removal_policy,
                )
            ),
        )
        self.ecs_cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
        )

        arm = size.architecture is Architecture.ARM64
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "WorkerTask",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            ephemeral_storage_gib=size.ephemeral_storage_gib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=(
                    ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64
                ),
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.worker_log_group = logs.LogGroup(
            self, "WorkerLogs", retention=LOG_RETENTION, removal_policy=removal_policy
        )
        self.task_definition.add_container(
            "Worker",
            image=ecs.ContainerImage.from_asset(
                str(ROOT),
                file=WORKER_DOCKERFILE,
                exclude=WORKER_IMAGE_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
                platform=(
                    ecr_assets.Platform.LINUX_ARM64
                    if arm
                    else ecr_assets.Platform.LINUX_AMD64
                ),
            ),
            logging=ecs.LogDriver.aws_logs(
                stream_prefix="worker", log_group=self.worker_log_group
            ),
            environment={
                Env.TABLE_NAME: videos.dynamodb_table.table_name,
                Env.SOURCE_BUCKET: storage.source_bucket.bucket_name,
                Env.OUTPUT_BUCKET: storage.output_bucket.bucket_name,
                Env.JOBS_QUEUE_URL: self.jobs_queue.queue_url,
                Env.HEARTBEAT_SECONDS: str(HEARTBEAT.to_seconds()),
                Env.VISIBILITY_TIMEOUT_SECONDS: str(VISIBILITY.to_seconds()),
                Env.STOP_TIMEOUT_SECONDS: str(WORKER_STOP_SECONDS),
                Env.MAX_RECEIVE_COUNT: str(max_receive_count),
                Env.WORK_DIR: "/tmp",  # noqa: S108 - the task's ephemeral disk
                Env.CHUNK_SECONDS: str(limits.chunk_seconds),
                Env.HDR_LADDER: str(limits.hdr_ladder).lower(),
                Env.MAX_DURATION_SECONDS: str(limits.max_source_minutes * 60),
                Env.MAX_FRAME_SIZE: str(limits.max_frame_size),
                Env.MAX_FRAME_RATE: str(limits.max_frame_rate),
                Env.JOB_TIME_FACTOR: f"{limits.job_time_budget_factor:g}",
                Env.TASK_VCPU: f"{size.cpu / 1024:g}",
                Env.TASK_MEMORY_MIB: str(size.memory_mib),
                Env.USD_PER_VCPU_HOUR: str(prices.usd_per_vcpu_hour),
                Env.USD_PER_GB_HOUR: str(prices.usd_per_gb_hour),
                Env.MAX_AUDIO_TRACKS: str(max_audio_tracks),
                **loudness_environment(loudness),
            },
            stop_timeout=STOP_TIMEOUT,
        )

        task_role = self.task_definition.task_role
        storage.grant_read_uploads(task_role)
        # GetObject on outputs: the worker reads back its thumbnails to tile
        # the sprite, and heads a growing playlist before it rewrites it.
        storage.grant_read_outputs(task_role)
        storage.grant_write_outputs(task_role)
        storage.grant_delete_outputs(task_role)
        videos.grant_read_write_items(task_role)
        # SendMessage: the worker that plans a long video queues its chunk
        # and audio jobs.
        self.jobs_queue.grant(
            task_role,
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:SendMessage",
        )
        task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:UpdateTaskProtection"],
                resources=[self.task_arn_pattern],
            )
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "WorkerSecurityGroup",
            vpc=self.vpc,
            description="FFmpeg workers: outbound only, no inbound rule",
            allow_all_outbound=True,
        )
        self.fargate_service = ecs.FargateService(
            self,
            "Service",
            cluster=self.ecs_cluster,
            task_definition=self.task_definition,
            desired_count=0,
            min_healthy_percent=0,
            assign_public_ip=True,
            security_groups=[self.security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            capacity_provider_strategies=_capacity(size.spot_percent),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        self.scaling = self.fargate_service.auto_scale_task_count(
            min_capacity=0, max_capacity=size.max_tasks
        )
        self.scaling.scale_on_metric(
            "ScaleOnBacklog",
            metric=self.metric_backlog(),
            adjustment_type=appscaling.AdjustmentType.EXACT_CAPACITY,
            scaling_steps=_steps(size.max_tasks),
            cooldown=Duration.minutes(1),
        )

    # --- VideoTranscoder ---------------------------------------------------

    @property
    def ingest_environment(self) -> Mapping[str, str]:
        return {
            Env.TRANSCODER: Transcoder.FARGATE.value,
            Env.JOBS_QUEUE_URL: self.jobs_queue.queue_url,
        }

    def grant_submit(self, grantee: iam.IGrantable) -> None:
        """SendMessage to the jobs queue."""
        self.jobs_queue.grant(grantee, "sqs:SendMessage")

    @property
    def functions(self) -> Sequence[PythonLambda]:
        return (self.dead_jobs_function,)

    def alarms(self) -> Sequence[AlarmSpec]:
        return (
            # The consumer empties the dead-letter queue at once, so its depth
            # says nothing; every message that arrives is received, though.
            AlarmSpec(
                "JobsDeadLettered",
                self.dead_letter_queue.metric_number_of_messages_received(
                    period=Duration.minutes(5), statistic="Sum"
                ),
                threshold=0,
                description=(
                    f"A transcode job was delivered {self.max_receive_count} "
                    "times without finishing and went to the dead-letter "
                    "queue; the dead-jobs function failed its video with the "
                    "reason, unless its task got done after all"
                ),
            ),
            AlarmSpec(
                "OldestJobAge",
                self.jobs_queue.metric_approximate_age_of_oldest_message(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=self.oldest_job_alarm.to_seconds(),
                description="A transcode job has waited too long for a worker",
            ),
        )

    def dashboard_widgets(self) -> Sequence[cloudwatch.IWidget]:
        queue = self.jobs_queue
        return (
            cloudwatch.GraphWidget(
                title="Transcode queue",
                left=[
                    queue.metric_approximate_number_of_messages_visible(),
                    queue.metric_approximate_number_of_messages_not_visible(),
                    self.dead_letter_queue.metric_number_of_messages_received(
                        label="Dead-lettered jobs", statistic="Sum"
                    ),
                ],
                right=[queue.metric_approximate_age_of_oldest_message()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Running worker tasks",
                # Each running task reports one CPU sample per period, so the
                # sample count is the number of tasks.
                left=[
                    self.fargate_service.metric_cpu_utilization(
                        statistic="SampleCount",
                        period=Duration.minutes(1),
                        label="Running tasks",
                    )
                ],
                width=12,
            ),
        )

    def outputs(self) -> Mapping[str, str]:
        return {"JobsQueueUrl": self.jobs_queue.queue_url}

    # --- its parts ------------------------------------------------------------

    @property
    def task_arn_pattern(self) -> str:
        """Every task of this construct's cluster (task ids are assigned at
        run time, so IAM can only name them with a wildcard)."""
        return Stack.of(self).format_arn(
            service="ecs",
            resource="task",
            resource_name=f"{self.ecs_cluster.cluster_name}/*",
        )

    def metric_backlog(self) -> cloudwatch.IMetric:
        """Jobs waiting plus jobs being worked on: zero only when idle."""
        queue = self.jobs_queue
        return cloudwatch.MathExpression(
            expression="visible + inflight",
            using_metrics={
                "visible": queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                "inflight": queue.metric_approximate_number_of_messages_not_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
            },
            period=Duration.minutes(1),
            label="Transcode backlog",
        )


def _capacity(spot_percent: int) -> list[ecs.CapacityProviderStrategy]:
    strategies = []
    if spot_percent < 100:
        strategies.append(
            ecs.CapacityProviderStrategy(
                capacity_provider="FARGATE", weight=100 - spot_percent
            )
        )
    if spot_percent > 0:
        strategies.append(
            ecs.CapacityProviderStrategy(
                capacity_provider="FARGATE_SPOT", weight=spot_percent
            )
        )
    return strategies


def _steps(max_tasks: int) -> list[appscaling.ScalingInterval]:
    """Backlog -> tasks: none when idle, then doubling thresholds (1, 2, 4,
    ...) each run as many tasks as jobs, up to the maximum. A policy takes at
    most 20 steps, and doubling needs 8 for the largest maximum of 100."""
    thresholds = [1]
    while thresholds[-1] * 2 < max_tasks:
        thresholds.append(thresholds[-1] * 2)
    if thresholds[-1] < max_tasks:
        thresholds.append(max_tasks)
    steps = [appscaling.ScalingInterval(upper=1, change=0)]
    for low, high in itertools.pairwise(thresholds):
        steps.append(appscaling.ScalingInterval(lower=low, upper=high, change=low))
    steps.append(appscaling.ScalingInterval(lower=thresholds[-1], change=max_tasks))
    return steps
