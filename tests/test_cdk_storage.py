"""Template facts of the storage and table constructs, and the stage switch."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from cdk_app.config import DEFAULTS, ConfigError
from tests.conftest import Synthesized, synthesize

DATA = "Vod"
ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def _bucket(synth: Synthesized, construct_id: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (logical, resource)
        for logical, resource in synth.resources(DATA, "AWS::S3::Bucket").items()
        if logical.startswith(f"Storage{construct_id}")
    ]
    assert len(matches) == 1, f"expected one {construct_id}, got {matches}"
    return matches[0]


def _policy_statements(synth: Synthesized, bucket_logical: str) -> list[dict[str, Any]]:
    for policy in synth.resources(DATA, "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_logical}:
            return list(policy["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"no bucket policy for {bucket_logical}")


@pytest.mark.parametrize("bucket", ["SourceBucket", "OutputBucket", "AccessLogsBucket"])
def test_every_bucket_is_private_encrypted_and_ssl_only(synth, bucket):
    logical, resource = _bucket(synth, bucket)
    props = resource["Properties"]
    assert props["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    statements = _policy_statements(synth, logical)
    deny_insecure = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert deny_insecure, "bucket policy must deny requests without TLS"
    public_allows = [
        s for s in statements if s["Effect"] == "Allow" and s.get("Principal") == "*"
    ]
    assert public_allows == [], "no bucket may be readable by everyone"


@pytest.mark.parametrize(
    ("bucket", "prefix"), [("SourceBucket", "source/"), ("OutputBucket", "output/")]
)
def test_source_and_output_buckets_log_access_to_the_logs_bucket(synth, bucket, prefix):
    logs_logical, _ = _bucket(synth, "AccessLogsBucket")
    _, resource = _bucket(synth, bucket)
    assert resource["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs_logical},
        "LogFilePrefix": prefix,
    }


def test_source_bucket_cors_serves_the_browser_upload_flows(synth):
    _, resource = _bucket(synth, "SourceBucket")
    # The knob's origins, then the web app's (a rule added once it exists).
    knob, app = resource["Properties"]["CorsConfiguration"]["CorsRules"]
    assert knob["AllowedOrigins"] == DEFAULTS["allowedOrigins"]
    assert app["AllowedOrigins"] == [synth.app_url(DATA)]
    for rule in (knob, app):
        assert sorted(rule["AllowedMethods"]) == [
            "DELETE",
            "GET",
            "HEAD",
            "POST",
            "PUT",
        ]
        assert sorted(rule["AllowedHeaders"]) == [
            "content-disposition",
            "content-type",
            # A single PUT is signed with If-None-Match: *, so Uppy sends it.
            "if-none-match",
            "x-amz-checksum-*",
        ]
        assert sorted(rule["ExposedHeaders"]) == ["ETag", "Location"]


def test_output_bucket_cors_lets_players_read(synth):
    _, resource = _bucket(synth, "OutputBucket")
    knob, app = resource["Properties"]["CorsConfiguration"]["CorsRules"]
    assert knob["AllowedOrigins"] == DEFAULTS["allowedOrigins"]
    assert app["AllowedOrigins"] == [synth.app_url(DATA)]
    for rule in (knob, app):
        assert sorted(rule["AllowedMethods"]) == ["GET", "HEAD"]


def test_incomplete_uploads_are_aborted_after_three_days_on_the_uploads_prefix(synth):
    _, resource = _bucket(synth, "SourceBucket")
    rules = resource["Properties"]["LifecycleConfiguration"]["Rules"]
    assert {
        "Id": "AbortIncompleteUploads",
        "Prefix": "uploads/",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    } in rules
    assert not any("Transitions" in rule for rule in rules), "transition is opt-in"


def test_video_table_keys_billing_recovery_encryption_and_ttl(synth):
    synth.template(DATA).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )


def test_owner_index_lists_one_owners_videos_by_creation_time(synth):
    synth.template(DATA).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "byOwner",
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "created_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ]
        },
    )


def test_dev_stage_destroys_stateful_resources_and_allows_deletion(synth):
    template = synth.template(DATA)
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Delete"})
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})
    assert not synth.app.node.find_child(DATA).termination_protection
    template.all_resources_properties(
        "AWS::DynamoDB::Table", {"DeletionProtectionEnabled": Match.absent()}
    )
    template.all_resources_properties(
        "AWS::Cognito::UserPool", {"DeletionProtection": Match.absent()}
    )


def test_prod_stage_retains_stateful_resources_and_protects_the_stack(synth_prod):
    template = synth_prod.template(DATA)
    template.all_resources("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})
    buckets = synth_prod.resources(DATA, "AWS::S3::Bucket")
    for logical, bucket in buckets.items():
        # The web bucket holds only the page, rebuilt from the repository.
        expected = "Delete" if logical.startswith("WebApp") else "Retain"
        assert bucket["DeletionPolicy"] == expected, logical
    assert synth_prod.app.node.find_child(DATA).termination_protection


def test_prod_stage_protects_the_table_and_the_user_pool_from_deletion(synth_prod):
    template = synth_prod.template(DATA)
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.all_resources_properties(
        "AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True}
    )
    template.resource_count_is("AWS::Cognito::UserPool", 1)
    template.all_resources_properties(
        "AWS::Cognito::UserPool", {"DeletionProtection": "ACTIVE"}
    )


def test_prod_synth_stops_on_the_dev_stages_localhost_origins(tmp_path):
    with pytest.raises(ConfigError, match="'allowedOrigins' has 'http://localhost"):
        synthesize(tmp_path, stage="prod")
