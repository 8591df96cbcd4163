"""The local run's IAM: which statements allow or deny a call, in AWS's
order and words; which action and resource each S3 and JSON API request is
checked as; and the service gateway, which lets through to moto what the
signer's role allows and refuses the rest as the service would."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.iam import AccessControl, AccessKey, Principal
from local.motoserver import SETUP_CREDENTIALS
from local.s3_gateway import S3Gateway, s3_checks
from local.service_calls import service_checks
from local.template import TemplateError
from tests.conftest import make_queue, make_table

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/videos"
DISTRIBUTION = f"arn:aws:cloudfront::{ACCOUNT}:distribution/E1"
USER = f"User: arn:aws:sts::{ACCOUNT}:assumed-role/role/session"
SETUP = AccessKey(
    SETUP_CREDENTIALS["AWS_ACCESS_KEY_ID"], SETUP_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
)


def allow(action, resource, **condition) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return {**statement, "Condition": condition} if condition else statement


def denial(statements, action, resource, context=None, resource_statements=()):
    role = Principal.assumed_role("role", "session", statements)
    return role.denial(action, resource, context or {}, resource_statements)


# --- the evaluator ----------------------------------------------------------


def test_only_a_named_action_on_a_named_resource_is_allowed():
    statements = [allow(["dynamodb:GetItem", "dynamodb:PutItem"], TABLE)]

    assert denial(statements, "dynamodb:PutItem", TABLE) is None
    assert denial(statements, "DynamoDB:putitem", TABLE) is None, "case-insensitive"
    assert denial(statements, "dynamodb:DeleteItem", TABLE) == (
        f"{USER} is not authorized to perform: dynamodb:DeleteItem on resource: "
        f"{TABLE} because no identity-based policy allows the dynamodb:DeleteItem "
        "action"
    )
    assert denial(statements, "dynamodb:GetItem", f"{TABLE}-other") is not None
    assert denial(statements, "dynamodb:GetItem", f"{TABLE}/index/byOwner")


def test_an_explicit_deny_wins_over_any_allow():
    statements = [
        allow("s3:*", "*"),
        {
            "Effect": "Deny",
            "Action": "s3:DeleteObject",
            "Resource": "arn:aws:s3:::b/v/*",
        },
    ]

    assert denial(statements, "s3:DeleteObject", "arn:aws:s3:::b/u/x") is None
    assert denial(statements, "s3:DeleteObject", "arn:aws:s3:::b/v/x").endswith(
        "with an explicit deny in an identity-based policy"
    )


def test_a_bucket_policy_deny_applies_to_every_principal_and_its_conditions_hold():
    https_only = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "s3:*",
        "Resource": "arn:aws:s3:::b/*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    always = {**https_only, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    everything = [allow("s3:*", "*")]

    # Loopback stands for TLS: the local run's requests are "secure".
    assert (
        denial(everything, "s3:GetObject", "arn:aws:s3:::b/x", None, [https_only])
        is None
    )
    assert denial(
        everything, "s3:GetObject", "arn:aws:s3:::b/x", None, [always]
    ).endswith("with an explicit deny in a resource-based policy")


def test_resource_wildcards_match_any_run_or_one_character():
    statements = [
        allow("s3:GetObject", "arn:aws:s3:::b/uploads/*"),
        allow("s3:PutObject", "arn:aws:s3:::b/v?/x"),
    ]

    assert (
        denial(statements, "s3:GetObject", "arn:aws:s3:::b/uploads/o/v/c.mp4") is None
    )
    assert denial(statements, "s3:GetObject", "arn:aws:s3:::b/uploadsx")
    assert denial(statements, "s3:GetObject", "arn:aws:s3:::b2/uploads/x")
    assert denial(statements, "s3:PutObject", "arn:aws:s3:::b/v1/x") is None
    assert denial(statements, "s3:PutObject", "arn:aws:s3:::b/v12/x")


def test_a_list_grant_holds_only_under_its_prefix():
    videos = [
        allow("s3:ListBucket", "arn:aws:s3:::b", StringLike={"s3:prefix": ["videos/*"]})
    ]
    bucket = "arn:aws:s3:::b"

    assert denial(videos, "s3:ListBucket", bucket, {"s3:prefix": "videos/v1/"}) is None
    assert denial(videos, "s3:ListBucket", bucket, {"s3:prefix": "uploads/"})
    assert denial(videos, "s3:ListBucket", bucket), "no prefix is no match"
    # A failed condition leaves an Allow out; it does not deny.
    assert (
        denial([*videos, allow("s3:ListBucket", bucket)], "s3:ListBucket", bucket)
        is None
    )


def test_a_resource_policy_allows_only_the_principal_it_names():
    bucket_policy = [
        {
            **allow(
                "s3:GetObject",
                "arn:aws:s3:::out/*",
                StringEquals={"AWS:SourceArn": DISTRIBUTION},
            ),
            "Principal": {"Service": "cloudfront.amazonaws.com"},
        }
    ]

    def cloudfront(source: str) -> Principal:
        name = "cloudfront.amazonaws.com"
        return Principal(name, service=name, context={"aws:SourceArn": source})

    read: tuple[Any, ...] = ("s3:GetObject", "arn:aws:s3:::out/x", {}, bucket_policy)
    assert cloudfront(DISTRIBUTION).denial(*read) is None
    assert cloudfront(f"{DISTRIBUTION}2").denial(*read) == (
        "User: cloudfront.amazonaws.com is not authorized to perform: "
        "s3:GetObject on resource: arn:aws:s3:::out/x because no "
        "resource-based policy allows the s3:GetObject action"
    )
    assert denial([], *read)


def test_a_condition_the_evaluator_cannot_read_stops_the_run():
    dated = allow("s3:*", "*", DateGreaterThan={"aws:CurrentTime": "2030-01-01"})
    access = AccessControl([], setup=SETUP)

    with pytest.raises(TemplateError, match="DateGreaterThan"):
        access.issue(Principal.assumed_role("role", "session", [dated]))


# --- what each request is checked as ------------------------------------------


@pytest.mark.parametrize(
    ("method", "key", "query", "expected"),
    [
        ("GET", "k", [], "s3:GetObject"),
        ("HEAD", "k", [], "s3:GetObject"),
        ("PUT", "k", [("partNumber", "1"), ("uploadId", "u")], "s3:PutObject"),
        ("POST", "k", [("uploads", "")], "s3:PutObject"),
        ("POST", "k", [("uploadId", "u")], "s3:PutObject"),
        ("GET", "k", [("uploadId", "u")], "s3:ListMultipartUploadParts"),
        ("DELETE", "k", [("uploadId", "u")], "s3:AbortMultipartUpload"),
        ("DELETE", "k", [], "s3:DeleteObject"),
        ("GET", "", [("uploads", "")], "s3:ListBucketMultipartUploads"),
    ],
)
def test_an_s3_request_is_checked_as_its_action(method, key, query, expected):
    resource = f"arn:aws:s3:::b/{key}" if key else "arn:aws:s3:::b"

    assert s3_checks(method, "b", key, query, {}) == [(expected, resource, {})]


def test_listing_copying_and_deleting_many_carry_their_prefix_source_and_keys():
    listing = s3_checks("GET", "b", "", [("list-type", "2"), ("prefix", "v/1/")], {})
    copy = s3_checks("PUT", "b", "k", [], {"x-amz-copy-source": "/a/s%20c"})
    deleted = s3_checks("POST", "b", "", [("delete", "")], {}, ["x", "y"])

    assert listing == [("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "v/1/"})]
    assert copy == [
        ("s3:PutObject", "arn:aws:s3:::b/k", {}),
        ("s3:GetObject", "arn:aws:s3:::a/s c", {}),
    ]
    assert deleted == [
        ("s3:DeleteObject", "arn:aws:s3:::b/x", {}),
        ("s3:DeleteObject", "arn:aws:s3:::b/y", {}),
    ]


def test_a_json_api_call_is_checked_as_its_action_on_its_resource():
    queue = f"http://127.0.0.1:5000/{ACCOUNT}/jobs"
    stream = f"{TABLE}/stream/2030-01-01T00:00:00.000"

    assert service_checks(
        "DynamoDB_20120810.Query", {"TableName": "videos", "IndexName": "byOwner"}
    ) == [("dynamodb:Query", f"{TABLE}/index/byOwner")]
    assert service_checks("DynamoDB_20120810.PutItem", {"TableName": "videos"}) == [
        ("dynamodb:PutItem", TABLE)
    ]
    assert service_checks(
        "DynamoDBStreams_20120810.GetRecords", {"ShardIterator": f"{stream}|1|abc"}
    ) == [("dynamodb:GetRecords", stream)]
    assert service_checks("DynamoDBStreams_20120810.ListStreams", {}) == [
        ("dynamodb:ListStreams", "*")
    ]
    assert service_checks("AmazonSQS.DeleteMessageBatch", {"QueueUrl": queue}) == [
        ("sqs:DeleteMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs")
    ]
    assert service_checks(
        "AWSEvents.PutEvents", {"Entries": [{"EventBusName": "bus"}, {}]}
    ) == [
        ("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/bus"),
        ("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"),
    ]


# --- the service gateway ------------------------------------------------------


@pytest.fixture
def access():
    return AccessControl([], setup=SETUP)


@pytest.fixture
def services(moto, access):
    gateway = S3Gateway(
        upstream=moto.url, secrets=access.secret_for, authorize=access.authorize
    )
    gateway.start()
    yield gateway
    gateway.stop()


def client_of(services, service: str, key: AccessKey):
    return boto3.client(
        service,
        endpoint_url=services.url,
        region_name="us-east-1",
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )


def refusal(call, **params) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    response = raised.value.response
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return status, response["Error"]["Code"], response["Error"]["Message"]


def test_the_gateway_passes_json_api_calls_the_role_allows_and_refuses_the_rest(
    moto, services, access
):
    table = make_table(moto)
    queue_url, _ = make_queue(moto)
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
    queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue_url.rsplit('/', 1)[1]}"
    key = access.issue(
        Principal.assumed_role(
            "role",
            "session",
            [allow("dynamodb:GetItem", table_arn), allow("sqs:SendMessage", queue_arn)],
        )
    )
    dynamodb = client_of(services, "dynamodb", key)
    sqs = client_of(services, "sqs", key)
    item = {"TableName": table, "Key": {"id": {"S": "v1"}}}

    assert "Item" not in dynamodb.get_item(**item)
    assert sqs.send_message(QueueUrl=queue_url, MessageBody="job")["MessageId"]
    assert refusal(dynamodb.put_item, TableName=table, Item=item["Key"]) == (
        400,
        "AccessDeniedException",
        f"{USER} is not authorized to perform: dynamodb:PutItem on resource: "
        f"{table_arn} because no identity-based policy allows the "
        "dynamodb:PutItem action",
    )
    assert refusal(sqs.purge_queue, QueueUrl=queue_url)[:2] == (403, "AccessDenied")
    assert len(access.denials) == 2


def test_the_gateway_refuses_json_api_calls_of_unknown_keys_and_wrong_secrets(
    moto, services
):
    stranger = AccessKey("AKIAUNKNOWN000000000", "not-a-known-secret")
    forger = AccessKey(SETUP.access_key_id, f"not-{SETUP.secret_access_key}")

    assert refusal(client_of(services, "dynamodb", stranger).list_tables)[:2] == (
        400,
        "UnrecognizedClientException",
    )
    assert refusal(client_of(services, "dynamodb", forger).list_tables)[:2] == (
        400,
        "InvalidSignatureException",
    )
    assert client_of(services, "dynamodb", SETUP).list_tables()["TableNames"]
