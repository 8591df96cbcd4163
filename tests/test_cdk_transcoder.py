"""The Fargate transcoder in the template: the S3 notification, the queues,
the task's environment and rights, and scaling from zero on the backlog."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from cdk_app.config import Architecture
from cdk_app.database import VideoTable
from cdk_app.storage import VideoStorage
from cdk_app.transcoder import (
    HEARTBEAT,
    VISIBILITY,
    FargateTranscoder,
    TranscodeLimits,
    WorkerSize,
)
from tests.conftest import Synthesized, cdk_json_context
from vod.costs import FARGATE_LIST_PRICES, FargatePrices
from vod.settings import Env, FrameSize, WorkerSettings

STACK = "Vod"


def _one(
    synth: Synthesized, type_: str, prefix: str = ""
) -> tuple[str, dict[str, Any]]:
    matches = [
        (k, v) for k, v in synth.resources(STACK, type_).items() if k.startswith(prefix)
    ]
    assert len(matches) == 1, (type_, prefix, [k for k, _ in matches])
    return matches[0]


def _statements(synth: Synthesized, policy_prefix: str) -> list[dict[str, Any]]:
    _, policy = _one(synth, "AWS::IAM::Policy", policy_prefix)
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for s in statements:
        found.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return found


def test_uploads_notify_the_ingest_function_for_every_create_kind(synth):
    ingest, _ = _one(synth, "AWS::Lambda::Function", "IngestFunction")
    _, notifications = _one(synth, "Custom::S3BucketNotifications")
    props = notifications["Properties"]
    assert props["BucketName"] == {"Ref": "StorageSourceBucketB2F37168"}
    configs = props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    events = set()
    for config in configs:
        assert config["LambdaFunctionArn"] == {"Fn::GetAtt": [ingest, "Arn"]}
        assert config["Filter"] == {
            "Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}
        }
        events.update(config["Events"])
    assert "s3:ObjectCreated:CompleteMultipartUpload" in events
    assert events == {
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:CompleteMultipartUpload",
    }


def test_jobs_queue_has_an_encrypted_ssl_only_dead_letter_queue(synth):
    dlq, dlq_resource = _one(synth, "AWS::SQS::Queue", "TranscoderJobsDeadLetterQueue")
    _, queue = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    props = queue["Properties"]
    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
        "maxReceiveCount": 3,
    }
    for resource in (queue, dlq_resource):
        assert resource["Properties"]["SqsManagedSseEnabled"] is True
    policies = synth.resources(STACK, "AWS::SQS::QueuePolicy").values()
    denied = [
        json.dumps(p["Properties"]["Queues"])
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    ]
    assert sum("TranscoderJobs" in d for d in denied) == 2


def _worker_env(synth: Synthesized) -> dict[str, Any]:
    _, task = _one(synth, "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def test_visibility_timeout_covers_the_gap_before_the_first_heartbeat(synth):
    _, queue = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    assert queue["Properties"]["VisibilityTimeout"] >= 2 * HEARTBEAT.to_seconds()


def test_a_dead_workers_job_and_lease_come_back_within_a_minute(synth):
    _, queue = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    env = _worker_env(synth)
    assert queue["Properties"]["VisibilityTimeout"] == VISIBILITY.to_seconds() == 60
    assert env[Env.VISIBILITY_TIMEOUT_SECONDS] == "60"
    assert env[Env.HEARTBEAT_SECONDS] == "20"


def test_the_workers_limits_and_prices_come_from_the_knobs(synth):
    context = cdk_json_context()
    env = _worker_env(synth)
    vcpu, gb = FARGATE_LIST_PRICES[context["workerArchitecture"]]
    assert env[Env.CHUNK_SECONDS] == str(context["chunkSeconds"])
    assert env[Env.HDR_LADDER] == str(context["hdrLadder"]).lower()
    assert env[Env.MAX_DURATION_SECONDS] == str(context["maxSourceMinutes"] * 60)
    assert env[Env.MAX_FRAME_SIZE] == context["maxFrameSize"]
    assert env[Env.MAX_FRAME_RATE] == str(context["maxFrameRate"])
    assert float(env[Env.JOB_TIME_FACTOR]) == context["jobTimeBudgetFactor"]
    assert float(env[Env.TASK_VCPU]) == context["workerCpu"] / 1024
    assert env[Env.TASK_MEMORY_MIB] == str(context["workerMemoryMiB"])
    assert float(env[Env.USD_PER_VCPU_HOUR]) == vcpu
    assert float(env[Env.USD_PER_GB_HOUR]) == gb


def test_the_worker_accepts_its_task_environment(synth):
    env = {
        k: v if isinstance(v, str) else "resolved"
        for k, v in _worker_env(synth).items()
    }
    settings = WorkerSettings.from_env(env)
    context = cdk_json_context()
    assert settings.chunk_seconds == context["chunkSeconds"]
    assert settings.hdr_ladder is context["hdrLadder"]
    assert settings.max_frame_size == FrameSize(3840, 2160)
    assert settings.time_budget(60) == context["jobTimeBudgetFactor"] * 60 + 120
    assert settings.task_vcpu == 2.0


def test_task_environment_names_the_right_queue_buckets_and_table(synth):
    queue, _ = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    _, task = _one(synth, "AWS::ECS::TaskDefinition")
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["VOD_JOBS_QUEUE_URL"] == {"Ref": queue}
    assert env["VOD_SOURCE_BUCKET"] == {"Ref": "StorageSourceBucketB2F37168"}
    assert env["VOD_OUTPUT_BUCKET"] == {"Ref": "StorageOutputBucketCD2EEB3A"}
    assert env["VOD_TABLE_NAME"] == {"Ref": "VideosTable41110721"}
    _, queue_resource = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    assert (
        int(env["VOD_MAX_RECEIVE_COUNT"])
        == (queue_resource["Properties"]["RedrivePolicy"]["maxReceiveCount"])
    )
    assert int(env["VOD_HEARTBEAT_SECONDS"]) < int(
        env["VOD_VISIBILITY_TIMEOUT_SECONDS"]
    )
    assert int(env["VOD_STOP_TIMEOUT_SECONDS"]) < container["StopTimeout"] <= 120


def test_task_defaults_x86_with_logs_and_the_configured_size(synth):
    _, task = _one(synth, "AWS::ECS::TaskDefinition")
    props = task["Properties"]
    assert props["RuntimePlatform"] == {
        "CpuArchitecture": "X86_64",
        "OperatingSystemFamily": "LINUX",
    }
    assert props["Cpu"] == "2048"
    assert props["Memory"] == "4096"
    assert props["EphemeralStorage"] == {"SizeInGiB": 50}
    (container,) = props["ContainerDefinitions"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    _, logs = _one(synth, "AWS::Logs::LogGroup", "TranscoderWorkerLogs")
    assert logs["Properties"]["RetentionInDays"] == 30


def _step_adjustments(resources: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step
        for policy in resources.values()
        if policy["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
        for step in policy["Properties"]["StepScalingPolicyConfiguration"][
            "StepAdjustments"
        ]
    ]


def _top_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The step for the largest backlogs: the one with no upper bound."""
    (top,) = [
        s
        for s in steps
        if "MetricIntervalUpperBound" not in s and "MetricIntervalLowerBound" in s
    ]
    return top


def test_service_scales_from_zero_to_the_most_tasks_on_the_backlog(synth):
    max_tasks = cdk_json_context()["workerMaxTasks"]
    _, service = _one(synth, "AWS::ECS::Service")
    assert service["Properties"]["DesiredCount"] == 0
    assert service["Properties"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Weight": 100}
    ]
    _, target = _one(synth, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["MinCapacity"] == 0
    assert target["Properties"]["MaxCapacity"] == max_tasks
    steps = _step_adjustments(synth.templates[STACK]["Resources"])
    assert sorted(step["ScalingAdjustment"] for step in steps) == [
        0,
        1,
        2,
        4,
        8,
        max_tasks,
    ]
    assert _top_step(steps)["ScalingAdjustment"] == max_tasks


def test_every_scaling_alarm_watches_the_jobs_backlog(synth):
    """Visible plus in-flight jobs of the jobs queue: each chunk of a long
    video is a job, so one video's chunks bring up to the most tasks."""
    queue, _ = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    policies = synth.resources(STACK, "AWS::ApplicationAutoScaling::ScalingPolicy")
    scaling_alarms = [
        alarm["Properties"]
        for alarm in synth.resources(STACK, "AWS::CloudWatch::Alarm").values()
        if any(
            action.get("Ref") in policies
            for action in alarm["Properties"].get("AlarmActions", [])
        )
    ]
    assert len(scaling_alarms) == len(policies) == 2
    for alarm in scaling_alarms:
        metrics = {m["Id"]: m for m in alarm["Metrics"]}
        (returned,) = [m for m in metrics.values() if m.get("ReturnData", True)]
        assert returned["Expression"] == "visible + inflight"
        for name, metric_name in (
            ("visible", "ApproximateNumberOfMessagesVisible"),
            ("inflight", "ApproximateNumberOfMessagesNotVisible"),
        ):
            stat = metrics[name]["MetricStat"]
            assert stat["Metric"]["MetricName"] == metric_name
            assert stat["Metric"]["Dimensions"] == [
                {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
            ]
            assert stat["Stat"] == "Maximum"


def test_ingest_function_may_only_update_records_send_jobs_and_failed_events(synth):
    queue, _ = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    failures, _ = _one(synth, "AWS::SQS::Queue", "IngestFailures")
    statements = _statements(synth, "IngestFunctionRoleDefaultPolicy")
    assert _actions(statements) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    sends = {
        json.dumps(s["Resource"]): _actions([s])
        for s in statements
        if "sqs:SendMessage" in _actions([s])
    }
    assert sends == {
        json.dumps({"Fn::GetAtt": [queue, "Arn"]}): {"sqs:SendMessage"},
        # Lambda's on-failure destination; CDK's grant adds the two reads.
        json.dumps({"Fn::GetAtt": [failures, "Arn"]}): {
            "sqs:SendMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        },
    }


def test_an_upload_event_the_ingest_function_fails_waits_in_a_queue(synth):
    """S3 invokes the ingest function asynchronously: an event it still fails
    after Lambda's retries goes to an encrypted, SSL-only queue for 14 days
    instead of being dropped with its video left unqueued."""
    ingest, _ = _one(synth, "AWS::Lambda::Function", "IngestFunction")
    failures, _ = _one(synth, "AWS::SQS::Queue", "IngestFailures")
    template = synth.template(STACK)
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": ingest},
            "Qualifier": "$LATEST",
            "DestinationConfig": {
                "OnFailure": {"Destination": {"Fn::GetAtt": [failures, "Arn"]}}
            },
        },
    )
    assert failures in template.find_resources(
        "AWS::SQS::Queue",
        {
            "Properties": {
                "SqsManagedSseEnabled": True,
                "MessageRetentionPeriod": 14 * 24 * 3600,
            }
        },
    )
    assert template.find_resources(
        "AWS::SQS::QueuePolicy",
        {
            "Properties": {
                "Queues": [{"Ref": failures}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {
                                        "Bool": {"aws:SecureTransport": "false"}
                                    },
                                }
                            )
                        ]
                    )
                },
            }
        },
    )


def test_dead_lettered_jobs_feed_the_dead_jobs_function(synth):
    dlq, dlq_resource = _one(synth, "AWS::SQS::Queue", "TranscoderJobsDeadLetterQueue")
    function, resource = _one(synth, "AWS::Lambda::Function", "TranscoderDeadJobs")
    props = resource["Properties"]
    assert props["Handler"] == "lambdas.dead_jobs.app.handler"
    assert props["Environment"]["Variables"] == {
        Env.TABLE_NAME: {"Ref": "VideosTable41110721"}
    }
    (mapping,) = [
        m["Properties"]
        for m in synth.resources(STACK, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    ]
    assert mapping["FunctionName"] == {"Ref": function}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    # Lambda wants the queue to hide a received batch for longer than the
    # function may take on it.
    visibility = dlq_resource["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * props["Timeout"]


def test_the_dead_jobs_function_reads_and_updates_records_and_consumes_the_dlq(
    synth,
):
    dlq, _ = _one(synth, "AWS::SQS::Queue", "TranscoderJobsDeadLetterQueue")
    statements = _statements(synth, "TranscoderDeadJobsFunctionRoleDefaultPolicy")
    by_action = {}
    for statement in statements:
        for action in _actions([statement]):
            by_action[action] = statement
    assert set(by_action) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        assert by_action[action]["Resource"] == {
            "Fn::GetAtt": ["VideosTable41110721", "Arn"]
        }
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert by_action[action]["Resource"] == {"Fn::GetAtt": [dlq, "Arn"]}


def test_task_role_has_exactly_the_workers_rights(synth):
    queue, _ = _one(synth, "AWS::SQS::Queue", "TranscoderJobsQueue")
    statements = _statements(synth, "TranscoderWorkerTaskTaskRoleDefaultPolicy")
    by_action = {}
    reads = set()
    for statement in statements:
        for action in _actions([statement]):
            by_action[action] = statement
            if action == "s3:GetObject":
                resources = statement["Resource"]
                reads |= {
                    (r["Fn::Join"][1][0]["Fn::GetAtt"][0], r["Fn::Join"][1][-1])
                    for r in (resources if isinstance(resources, list) else [resources])
                }
    assert set(by_action) == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "ecs:UpdateTaskProtection",
    }
    # The sources it transcodes, and its own outputs (thumbnails, playlists).
    assert reads == {
        ("StorageSourceBucketB2F37168", "/uploads/*"),
        ("StorageOutputBucketCD2EEB3A", "/videos/*"),
    }
    assert by_action["s3:PutObject"]["Resource"]["Fn::Join"][1][-1] == "/videos/*"
    for action in ("sqs:ReceiveMessage", "sqs:SendMessage"):
        assert by_action[action]["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    protection = json.dumps(by_action["ecs:UpdateTaskProtection"]["Resource"])
    assert ":task/" in protection
    assert "TranscoderCluster" in protection


def test_worker_image_is_built_from_the_worker_dockerfile(synth):
    manifest = json.loads((synth.outdir / "Vod.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "containers/ffmpeg/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "containers" / "ffmpeg" / "Dockerfile").exists()
    assert (staged / "vod" / "model.py").exists()
    assert not (staged / "tests").exists()
    assert not (staged / "lambdas").exists()


@pytest.fixture(scope="module")
def graviton_spot() -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(), "Graviton")
    FargateTranscoder(
        stack,
        "Transcoder",
        storage=VideoStorage(stack, "Storage", allowed_origins=["https://a.example"]),
        videos=VideoTable(stack, "Videos"),
        size=WorkerSize(
            cpu=4096,
            memory_mib=8192,
            architecture=Architecture.ARM64,
            spot_percent=70,
            max_tasks=25,
        ),
        limits=TranscodeLimits(
            chunk_seconds=120,
            max_source_minutes=30,
            max_frame_size=FrameSize(1920, 1080),
            max_frame_rate=60,
            job_time_budget_factor=2.5,
            hdr_ladder=True,
        ),
        prices=FargatePrices.list_price("arm64"),
        max_receive_count=5,
    )
    return dict(Template.from_stack(stack).to_json())


def test_architecture_spot_share_and_redrive_are_one_knob_away(graviton_spot):
    resources = graviton_spot["Resources"].values()
    (task,) = [r for r in resources if r["Type"] == "AWS::ECS::TaskDefinition"]
    assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (service,) = [r for r in resources if r["Type"] == "AWS::ECS::Service"]
    assert service["Properties"]["CapacityProviderStrategy"] == [
        {"CapacityProvider": "FARGATE", "Weight": 30},
        {"CapacityProvider": "FARGATE_SPOT", "Weight": 70},
    ]
    queues = [r for r in resources if r["Type"] == "AWS::SQS::Queue"]
    assert [
        q["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        for q in queues
        if "RedrivePolicy" in q["Properties"]
    ] == [5]
    steps = _step_adjustments(graviton_spot["Resources"])
    assert sorted(s["ScalingAdjustment"] for s in steps) == [0, 1, 2, 4, 8, 16, 25]
    assert _top_step(steps)["ScalingAdjustment"] == 25


def test_task_size_limits_and_prices_reach_the_worker(graviton_spot):
    (task,) = [
        r
        for r in graviton_spot["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
    ]
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert (env[Env.TASK_VCPU], env[Env.TASK_MEMORY_MIB]) == ("4", "8192")
    assert (env[Env.CHUNK_SECONDS], env[Env.MAX_DURATION_SECONDS]) == ("120", "1800")
    assert (env[Env.MAX_FRAME_SIZE], env[Env.MAX_FRAME_RATE]) == ("1920x1080", "60")
    assert env[Env.JOB_TIME_FACTOR] == "2.5"
    assert env[Env.HDR_LADDER] == "true"
    assert (
        float(env[Env.USD_PER_VCPU_HOUR]),
        float(env[Env.USD_PER_GB_HOUR]),
    ) == FARGATE_LIST_PRICES["arm64"]
