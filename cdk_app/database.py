"""The video table: one item per video, listed per owner through a GSI."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from vod.model import (
    OWNER_INDEX,
    OWNER_INDEX_PARTITION_KEY,
    OWNER_INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
    TTL_ATTRIBUTE,
)

ITEM_READ_ACTIONS = ("dynamodb:GetItem",)
ITEM_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
)


class VideoTable(Construct):
    """Videos keyed by ``id``; the ``byOwner`` index lists one owner's videos
    newest first (sort key ``created_at``), so no code path needs a Scan.

    Abandoned uploads expire through the ``expires_at`` TTL attribute, which
    the API sets on UPLOADING records and clears once the upload completes.

    :param removal_policy: Default RETAIN. Point-in-time recovery is always on.
    :param deletion_protection: Default False. True makes DynamoDB refuse to
        delete the table, whoever asks, until the protection is turned off.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        deletion_protection: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dynamodb_table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=TTL_ATTRIBUTE,
            # Every status change, for the lifecycle-event publisher.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            removal_policy=removal_policy,
            # Off leaves the property out of the template: DynamoDB's default.
            deletion_protection=True if deletion_protection else None,
        )
        self.dynamodb_table.add_global_secondary_index(
            index_name=OWNER_INDEX,
            partition_key=dynamodb.Attribute(
                name=OWNER_INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=OWNER_INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING
            ),
            projection_type=dynamodb.ProjectionType.ALL,
        )

    def feed_stream(self, function: lambda_.Function, *, failed: sqs.IQueue) -> None:
        """Feed the table's stream to ``function`` from its oldest record, 25
        records a batch, with partial batch failures; a batch still failing
        after 20 retries goes to ``failed``."""
        function.add_event_source(
            sources.DynamoEventSource(
                self.dynamodb_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=25,
                retry_attempts=20,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(failed),
            )
        )

    @property
    def owner_index_arn(self) -> str:
        return f"{self.dynamodb_table.table_arn}/index/{OWNER_INDEX}"

    def grant_read_items(self, grantee: iam.IGrantable) -> iam.Grant:
        return self._grant(grantee, *ITEM_READ_ACTIONS)

    def grant_read_write_items(self, grantee: iam.IGrantable) -> iam.Grant:
        """Item-level reads and writes; no Scan, no table-level actions."""
        return self._grant(grantee, *ITEM_READ_ACTIONS, *ITEM_WRITE_ACTIONS)

    def grant_update_items(self, grantee: iam.IGrantable) -> iam.Grant:
        """Conditional UpdateItem only: enough to move a record's status."""
        return self._grant(grantee, "dynamodb:UpdateItem")

    def grant_query_by_owner(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:Query"],
            resource_arns=[self.owner_index_arn],
        )

    def _grant(self, grantee: iam.IGrantable, *actions: str) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=list(actions),
            resource_arns=[self.dynamodb_table.table_arn],
        )
