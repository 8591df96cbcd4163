"""The constructs on their own, in a throwaway stack: opt-in rules and the
prefix-scoped grants their users rely on."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from cdk_app.database import VideoTable
from cdk_app.storage import VideoStorage


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    app = cdk.App()
    stack = cdk.Stack(app, "Throwaway")
    storage = VideoStorage(
        stack,
        "Storage",
        allowed_origins=["https://app.example.com"],
        abort_incomplete_uploads_after_days=7,
        originals_transition_after_days=30,
    )
    table = VideoTable(stack, "Videos")
    roles = {}
    for name, grant in {
        "Upload": storage.grant_upload,
        "ReadUploads": storage.grant_read_uploads,
        "WriteOutputs": storage.grant_write_outputs,
        "DeleteOutputs": storage.grant_delete_outputs,
        "Items": table.grant_read_write_items,
        "Query": table.grant_query_by_owner,
    }.items():
        role = iam.Role(
            stack, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        grant(role)
        roles[name] = role
    template = Template.from_stack(stack).to_json()
    return {"stack": stack, "template": template}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if resource["Properties"]["Roles"] == [{"Ref": _logical(template, role)}]:
            return list(resource["Properties"]["PolicyDocument"]["Statement"])
    raise AssertionError(f"no policy for role {role}")


def _logical(template: dict[str, Any], prefix: str) -> Any:
    (logical,) = [
        k
        for k, v in template["Resources"].items()
        if k.startswith(prefix) and v["Type"] == "AWS::IAM::Role"
    ]
    return logical


def _object_arn(bucket_prefix: str, template: dict[str, Any], path: str) -> Any:
    (logical,) = [
        k
        for k, v in template["Resources"].items()
        if k.startswith(bucket_prefix) and v["Type"] == "AWS::S3::Bucket"
    ]
    return {"Fn::Join": ["", [{"Fn::GetAtt": [logical, "Arn"]}, f"/{path}"]]}


def test_storage_transition_and_abort_rules_follow_the_knobs(built):
    template = built["template"]
    (source,) = [
        v
        for k, v in template["Resources"].items()
        if k.startswith("StorageSourceBucket") and v["Type"] == "AWS::S3::Bucket"
    ]
    rules = {
        r["Id"]: r for r in source["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    assert rules["ArchiveOriginals"]["Prefix"] == "uploads/"
    assert rules["ArchiveOriginals"]["Transitions"] == [
        {"StorageClass": "GLACIER_IR", "TransitionInDays": 30}
    ]


def test_upload_grant_is_three_named_actions_on_the_uploads_prefix(built):
    template = built["template"]
    (statement,) = _statements(template, "Upload")
    assert sorted(statement["Action"]) == [
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    assert statement["Resource"] == _object_arn(
        "StorageSourceBucket", template, "uploads/*"
    )


@pytest.mark.parametrize(
    ("role", "bucket", "action", "path"),
    [
        ("ReadUploads", "StorageSourceBucket", "s3:GetObject", "uploads/*"),
        ("WriteOutputs", "StorageOutputBucket", "s3:PutObject", "videos/*"),
    ],
)
def test_prefix_grants_name_one_action_on_one_prefix(built, role, bucket, action, path):
    template = built["template"]
    statement = next(s for s in _statements(template, role) if s["Action"] == action)
    assert statement["Resource"] == _object_arn(bucket, template, path)


def test_reading_uploads_lists_only_the_uploads_prefix(built):
    """Without ListBucket S3 answers a missing key with 403, not 404; with it
    scoped by s3:prefix, a reader tells "gone" from "forbidden" and lists
    nothing else."""
    template = built["template"]
    statements = _statements(template, "ReadUploads")
    assert sorted(s["Action"] for s in statements) == ["s3:GetObject", "s3:ListBucket"]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["uploads/*"]}}
    bucket_arn = _object_arn("StorageSourceBucket", template, "")["Fn::Join"][1][0]
    assert listing["Resource"] == bucket_arn


def test_delete_outputs_lists_only_the_outputs_prefix(built):
    template = built["template"]
    statements = _statements(template, "DeleteOutputs")
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["videos/*"]}}
    deleting = next(s for s in statements if s["Action"] == "s3:DeleteObject")
    assert deleting["Resource"] == _object_arn(
        "StorageOutputBucket", template, "videos/*"
    )


def test_table_grants_are_item_level_and_the_query_is_on_the_owner_index(built):
    template = built["template"]
    (items,) = _statements(template, "Items")
    assert sorted(items["Action"]) == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    assert not any("Scan" in a or a.endswith("*") for a in items["Action"])
    (query,) = _statements(template, "Query")
    assert query["Action"] == "dynamodb:Query"
    assert query["Resource"]["Fn::Join"][1][-1] == "/index/byOwner"


def test_storage_refuses_an_empty_origin_list():
    stack = cdk.Stack(cdk.App(), "Empty")
    with pytest.raises(ValueError, match="allowed origin"):
        VideoStorage(stack, "Storage", allowed_origins=[])
