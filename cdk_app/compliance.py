"""The compliance gate and every acknowledgement of it, in one place.

``enable_compliance_gate`` applies cdk-nag's AwsSolutions pack to the whole
app: any finding that is not acknowledged here fails synth. Each
acknowledgement names one finding on one construct and says why it is true.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from cdk_app.captions import VideoCaptions
from cdk_app.delivery import VideoDelivery
from cdk_app.events import VideoEvents
from cdk_app.mediaconvert import MediaConvertTranscoder
from cdk_app.storage import CAPTION_FILES, SUBTITLE_RENDITIONS, VideoStorage
from cdk_app.transcoder import FargateTranscoder
from cdk_app.transcoding import VideoTranscoder
from cdk_app.upload_api import UploadApi
from cdk_app.web_app import WebApp
from vod.keys import OUTPUTS_PREFIX, UPLOADS_PREFIX

#: The id CDK gives its singleton S3-notifications handler in every stack.
BUCKET_NOTIFICATIONS_HANDLER = (
    "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
)
PREFIX_GRANT = (
    "Scoped to one key prefix of one bucket: IAM can only express a prefix "
    "as an object ARN ending in '*'. The actions are named, not wildcarded."
)

STREAM_READ = (
    "dynamodb:ListStreams, granted with the table's stream read, supports no "
    "resource-level permission; AWS requires '*'. Reading records is scoped "
    "to the video table's stream."
)
DEAD_LETTER_DESTINATION = (
    "This queue is itself the dead-letter destination: the stream consumer "
    "sends the batches it gave up on here."
)


def enable_compliance_gate(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def _acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


def _prefix_resource(bucket: s3.IBucket, prefix: str) -> str:
    """cdk-nag's text for ``bucket.arn_for_objects(prefix + '*')``."""
    return f"Resource::<{_logical_id(bucket)}.Arn>/{prefix}*"


def _acknowledge_prefix_grants(
    policy: IConstruct, grants: list[tuple[s3.IBucket, str]]
) -> None:
    for bucket, prefix in grants:
        _acknowledge(
            policy,
            f"AwsSolutions-IAM5[{_prefix_resource(bucket, prefix)}]",
            PREFIX_GRANT,
        )


def _default_policy(role: IConstruct) -> IConstruct:
    return role.node.find_child("DefaultPolicy")


def _source_and_output(storage: VideoStorage) -> list[tuple[s3.IBucket, str]]:
    """Readers of originals that write outputs (workers, MediaConvert)."""
    return [
        (storage.source_bucket, UPLOADS_PREFIX),
        (storage.output_bucket, OUTPUTS_PREFIX),
    ]


def acknowledge_upload_api(api: UploadApi, storage: VideoStorage) -> None:
    _acknowledge_prefix_grants(
        _default_policy(api.upload_function.role),
        [(storage.source_bucket, UPLOADS_PREFIX)],
    )
    _acknowledge_prefix_grants(
        _default_policy(api.videos_function.role),
        [
            (storage.source_bucket, UPLOADS_PREFIX),
            (storage.output_bucket, OUTPUTS_PREFIX),
            (storage.output_bucket, CAPTION_FILES),
        ],
    )
    if api.user_pool is not None:
        _acknowledge(
            api.user_pool,
            "AwsSolutions-COG2",
            "MFA is offered (TOTP) but not required: the pool signs in the "
            "uploaders of the operator's video app, and whether they must "
            "enroll a second factor is the operator's policy, set on the pool.",
        )
        _acknowledge(
            api.user_pool,
            "AwsSolutions-COG8",
            "The Plus feature plan (threat protection) is billed per monthly "
            "active user; the default stays on Essentials and operators who "
            "need adaptive authentication switch the pool's feature plan.",
        )


def acknowledge_transcoder(
    transcoder: VideoTranscoder, storage: VideoStorage, *, submitter: iam.IRole
) -> None:
    """The transcoder's own findings, and those of the grant that lets
    ``submitter`` (the ingest function's role) hand it uploads. Only here do
    the kinds of transcoder differ: their findings do."""
    if isinstance(transcoder, FargateTranscoder):
        _acknowledge_fargate(transcoder, storage)
    elif isinstance(transcoder, MediaConvertTranscoder):
        _acknowledge_mediaconvert(transcoder, storage, submitter)
    else:
        raise TypeError(f"no acknowledgements known for {type(transcoder).__name__}")


def _acknowledge_fargate(transcoder: FargateTranscoder, storage: VideoStorage) -> None:
    task_policy = _default_policy(transcoder.task_definition.task_role)
    _acknowledge_prefix_grants(task_policy, _source_and_output(storage))
    _acknowledge(
        task_policy,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:"
        f"<AWS::AccountId>:task/<{_logical_id(transcoder.ecs_cluster)}>/*]",
        "ecs:UpdateTaskProtection on the tasks of this cluster only: task ids "
        "are assigned at run time, so IAM can name them only with a wildcard.",
    )
    _acknowledge(
        transcoder.task_definition,
        "AwsSolutions-ECS2",
        "The environment holds only resource names, the queue URL and timing "
        "numbers, all visible in the template anyway; there is no secret.",
    )
    execution_role = transcoder.task_definition.obtain_execution_role()
    _acknowledge(
        _default_policy(execution_role),
        "AwsSolutions-IAM5[Resource::*]",
        "ecr:GetAuthorizationToken supports no resource-level permission; AWS "
        "requires '*'. The image pull and log writes are scoped to the "
        "image's repository and the worker's log group.",
    )


def _acknowledge_mediaconvert(
    transcoder: MediaConvertTranscoder, storage: VideoStorage, submitter: iam.IRole
) -> None:
    _acknowledge_prefix_grants(
        _default_policy(transcoder.mediaconvert_role), _source_and_output(storage)
    )
    _acknowledge(
        _default_policy(submitter),
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:mediaconvert:"
        "<AWS::Region>:<AWS::AccountId>:jobs/*]",
        "mediaconvert:CreateJob authorizes the new job's ARN, whose id "
        "MediaConvert assigns at submission, so IAM can name it only with a "
        "wildcard; the job template and the queue are named exactly.",
    )
    _acknowledge(
        _default_policy(transcoder.status_function.role),
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:mediaconvert:"
        "<AWS::Region>:<AWS::AccountId>:jobs/*]",
        "mediaconvert:GetJob on the account's jobs, to read a finished job's "
        "acceleration (its price tier): job ids are assigned at submission, "
        "so IAM can name them only with a wildcard. GetJob only reads.",
    )


def acknowledge_events(video_events: VideoEvents) -> None:
    _acknowledge(
        video_events.publisher.role,
        "AwsSolutions-IAM5[Resource::*]",
        STREAM_READ,
    )
    _acknowledge(
        video_events.failed_batches,
        "AwsSolutions-SQS3",
        DEAD_LETTER_DESTINATION,
    )


def acknowledge_captions(captions: VideoCaptions, storage: VideoStorage) -> None:
    role = captions.publisher.role
    _acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        STREAM_READ,
    )
    _acknowledge(
        captions.failed_batches,
        "AwsSolutions-SQS3",
        DEAD_LETTER_DESTINATION,
    )
    policy = _default_policy(role)
    grants: list[tuple[s3.IBucket, str]] = [
        (storage.output_bucket, CAPTION_FILES),
        (storage.output_bucket, SUBTITLE_RENDITIONS),
    ]
    if captions.transcribe_rule is not None:
        grants.append((storage.source_bucket, UPLOADS_PREFIX))
    _acknowledge_prefix_grants(policy, grants)
    _acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::<{_logical_id(storage.output_bucket)}.Arn>"
        "/videos/*/master.m3u8]",
        "Every video's master playlist and nothing else in its folder: the "
        "video id is the one varying part of the key.",
    )
    if captions.transcribe_rule is not None:
        _acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:transcribe:"
            "<AWS::Region>:<AWS::AccountId>:transcription-job/vod-captions-*]",
            "Only the jobs this platform names, one per video: the video id "
            "is the varying part of the name.",
        )


def acknowledge_delivery(delivery: VideoDelivery) -> None:
    distribution = delivery.cloudfront_distribution
    _acknowledge(
        distribution,
        "AwsSolutions-CFR1",
        "Videos are served worldwide by design; an operator who must restrict "
        "countries adds a geo restriction to the distribution.",
    )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR2",
        "Playback serves immutable, private-origin HLS objects through OAC; a "
        "WAF web ACL is billed per rule and request and is the operator's "
        "choice, attached by web ACL id.",
    )
    if delivery.playback_domain is None:
        _acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "Without the knobs domainName and certificateArn the distribution "
            "has only its *.cloudfront.net name, whose certificate CloudFront "
            "serves with a TLSv1 minimum whatever the distribution asks; with "
            "them it serves the operator's certificate with a TLSv1.2_2021 "
            "minimum and this finding does not arise.",
        )


def acknowledge_web_app(web_app: WebApp, deployment: s3deploy.BucketDeployment) -> None:
    """The page's distribution, and CDK's BucketDeployment handler that copies
    the page into its bucket (one per stack, CDK's code and role)."""
    distribution = web_app.cloudfront_distribution
    _acknowledge(
        distribution,
        "AwsSolutions-CFR1",
        "The web app is a static page for users anywhere; an operator who must "
        "restrict countries adds a geo restriction to the distribution.",
    )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR2",
        "The distribution serves only the static page from a private bucket "
        "through OAC, read-only (GET and HEAD); the API it calls has its own "
        "throttling and JWT authorizer. A WAF web ACL is billed per rule and "
        "request and is the operator's choice, attached by web ACL id.",
    )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR4",
        "The web app is served on its *.cloudfront.net name, whose certificate "
        "CloudFront serves with a TLSv1 minimum whatever the distribution "
        "asks; browsers that load the page negotiate TLS 1.2 or later.",
    )
    role = deployment.handler_role
    handler = role.node.scope
    assert handler is not None
    _acknowledge(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
        "service-role/AWSLambdaBasicExecutionRole]",
        "CDK's BucketDeployment handler runs with the basic execution policy, "
        "which grants only CloudWatch Logs writes, to a log group "
        "CloudFormation names.",
    )
    policy = _default_policy(role)
    for finding, reason in (
        (
            "Action::s3:GetObject*",
            "CDK's grantRead of the asset and web buckets to its BucketDeployment "
            "handler: GetObject and its version and tagging reads, nothing else.",
        ),
        (
            "Action::s3:GetBucket*",
            "CDK's grantRead to its BucketDeployment handler: bucket reads "
            "(location, versioning) that `aws s3 sync` makes.",
        ),
        (
            "Action::s3:List*",
            "CDK's grantRead to its BucketDeployment handler: `aws s3 sync` "
            "lists both buckets to copy only what changed.",
        ),
        (
            "Action::s3:DeleteObject*",
            "CDK's grantReadWrite of the web bucket to its BucketDeployment "
            "handler: sync --delete removes files the new build no longer has.",
        ),
        (
            "Action::s3:Abort*",
            "CDK's grantReadWrite of the web bucket to its BucketDeployment "
            "handler: aborting its own failed multipart copies.",
        ),
        (
            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-"
            "<AWS::AccountId>-<AWS::Region>/*",
            "The CDK bootstrap asset bucket, where the page's zip is staged; "
            "its key is known only at deploy time.",
        ),
        (
            f"Resource::<{_logical_id(web_app.bucket)}.Arn>/*",
            "The web bucket holds only the page: the handler syncs all of it.",
        ),
        (
            "Resource::*",
            "cloudfront:CreateInvalidation and GetInvalidation, granted by CDK "
            "to invalidate the page's distribution after a deploy; CDK "
            "grants them on '*'.",
        ),
    ):
        _acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)
    _acknowledge(
        handler,
        "AwsSolutions-L1",
        "CDK's BucketDeployment handler: CDK pins its Python runtime to the "
        "AWS CLI layer it ships with, and updates both with aws-cdk-lib.",
    )


def acknowledge_ingest_failures(queue: sqs.IQueue) -> None:
    _acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself the failure destination: Lambda sends here the "
        "S3 events the ingest function still failed after its retries.",
    )


def acknowledge_bucket_notifications(stack: Stack) -> None:
    """CDK's own S3-notification custom resource (one per stack)."""
    handler = stack.node.find_child(BUCKET_NOTIFICATIONS_HANDLER)
    role = handler.node.find_child("Role")
    _acknowledge(
        role,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
        "service-role/AWSLambdaBasicExecutionRole]",
        "CDK's S3-notifications handler runs with the basic execution policy, "
        "which grants only CloudWatch Logs writes. The bucket's "
        "notifications_handler_role does not avoid it: CDK attaches the policy "
        "to any role it is given except an immutable one, and to an immutable "
        "one it cannot attach the bucket's s3:PutBucketNotification policy "
        "either. The handler's log group is named by CloudFormation, so logs "
        "rights of our own would need a wildcard as well.",
    )


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource)
    logical_id: str = Stack.of(construct).resolve(resource.logical_id)
    return logical_id
