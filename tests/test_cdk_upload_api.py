"""The upload API in the template: every route behind the JWT authorizer, CORS,
access logs, and least-privilege roles."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Template

from cdk_app.config import DEFAULTS
from cdk_app.database import VideoTable
from cdk_app.storage import VideoStorage
from cdk_app.upload_api import ExternalIssuer, UploadApi, UploadLimits
from lambdas.upload_api.app import ROUTE_KEYS as UPLOAD_ROUTES
from lambdas.videos_api.app import ROUTE_KEYS as VIDEO_ROUTES
from tests.conftest import PROD_KNOBS, Synthesized

STACK = "Vod"


def _resources(synth: Synthesized, type_: str) -> dict[str, dict[str, Any]]:
    return synth.resources(STACK, type_)


def _role_statements(synth: Synthesized, role_prefix: str) -> list[dict[str, Any]]:
    statements = []
    for policy in _resources(synth, "AWS::IAM::Policy").values():
        roles = json.dumps(policy["Properties"].get("Roles", []))
        if role_prefix in roles:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statements, f"no policy for {role_prefix}"
    return statements


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


def test_route_keys_cover_the_contract():
    assert set(UPLOAD_ROUTES) == {
        "GET /s3/params",
        "POST /s3/multipart",
        "GET /s3/multipart/{uploadId}",
        "GET /s3/multipart/{uploadId}/{partNumber}",
        "GET /s3/multipart/{uploadId}/batch",
        "POST /s3/multipart/{uploadId}/sign",
        "POST /s3/multipart/{uploadId}/complete",
        "DELETE /s3/multipart/{uploadId}",
        "POST /s3/sign",
    }
    assert set(VIDEO_ROUTES) == {
        "GET /videos",
        "GET /videos/{id}",
        "PATCH /videos/{id}",
        "DELETE /videos/{id}",
        "GET /videos/{id}/captions",
        "PUT /videos/{id}/captions/{lang}",
        "DELETE /videos/{id}/captions/{lang}",
    }


def test_every_route_exists_behind_the_jwt_authorizer(synth):
    routes = _resources(synth, "AWS::ApiGatewayV2::Route")
    (authorizer_id,) = _resources(synth, "AWS::ApiGatewayV2::Authorizer")
    by_key = {r["Properties"]["RouteKey"]: r["Properties"] for r in routes.values()}
    assert set(by_key) == set(UPLOAD_ROUTES) | set(VIDEO_ROUTES)
    for key, props in by_key.items():
        assert props["AuthorizationType"] == "JWT", key
        assert props["AuthorizerId"] == {"Ref": authorizer_id}, key


def test_routes_reach_the_function_that_serves_them(synth):
    integrations = _resources(synth, "AWS::ApiGatewayV2::Integration")
    target_of = {
        logical: json.dumps(props["Properties"]["IntegrationUri"])
        for logical, props in integrations.items()
    }
    for route in _resources(synth, "AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        integration = props["Target"]["Fn::Join"][1][1]["Ref"]
        function = (
            "UploadFunction" if props["RouteKey"] in UPLOAD_ROUTES else "VideosFunction"
        )
        assert function in target_of[integration], props["RouteKey"]
        assert "PayloadFormatVersion" in integrations[integration]["Properties"]
        assert integrations[integration]["Properties"]["PayloadFormatVersion"] == "2.0"


def test_the_authorizer_trusts_the_stacks_cognito_pool_by_default(synth):
    ((pool_id, _),) = _resources(synth, "AWS::Cognito::UserPool").items()
    ((client_id, _),) = _resources(synth, "AWS::Cognito::UserPoolClient").items()
    (authorizer,) = _resources(synth, "AWS::ApiGatewayV2::Authorizer").values()
    config = authorizer["Properties"]["JwtConfiguration"]
    assert config["Audience"] == [{"Ref": client_id}]
    assert {"Ref": pool_id} in config["Issuer"]["Fn::Join"][1]
    assert authorizer["Properties"]["IdentitySource"] == [
        "$request.header.Authorization"
    ]


def test_the_app_client_is_a_public_code_grant_client_for_the_knobs_urls(synth):
    template = synth.template(STACK)
    template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthScopes": ["openid", "email", "profile"],
            "CallbackURLs": [*DEFAULTS["authCallbackUrls"], synth.app_url(STACK, "/")],
            "LogoutURLs": [*DEFAULTS["authLogoutUrls"], synth.app_url(STACK, "/")],
            "GenerateSecret": False,
        },
    )


def test_without_a_domain_prefix_the_domain_is_named_after_the_stacks_id(synth):
    stack_uuid = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
    (domain,) = _resources(synth, "AWS::Cognito::UserPoolDomain").values()
    assert domain["Properties"]["Domain"] == {"Fn::Join": ["", ["vod-", stack_uuid]]}
    assert "UserPoolDomainUrl" in synth.templates[STACK]["Outputs"]


def test_a_domain_prefix_adds_the_hosted_sign_in_domain_and_its_url(synth_prod):
    template = synth_prod.template(STACK)
    pool = Capture()
    template.has_resource_properties(
        "AWS::Cognito::UserPoolDomain",
        {"Domain": PROD_KNOBS["authDomainPrefix"], "UserPoolId": {"Ref": pool}},
    )
    assert pool.as_string().startswith("UploadApiUserPool")
    (domain,) = template.find_resources("AWS::Cognito::UserPoolDomain")
    template.has_output(
        "UserPoolDomainUrl",
        {
            "Value": {
                "Fn::Join": [
                    "",
                    [
                        "https://",
                        {"Ref": domain},
                        ".auth.",
                        {"Ref": "AWS::Region"},
                        ".amazoncognito.com",
                    ],
                ]
            }
        },
    )
    app = synth_prod.app_url(STACK, "/")
    template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "CallbackURLs": [*PROD_KNOBS["authCallbackUrls"], app],
            "LogoutURLs": [*PROD_KNOBS["authLogoutUrls"], app],
        },
    )


def test_api_cors_allows_the_configured_origins_with_auth_headers(synth):
    (api,) = _resources(synth, "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == [*DEFAULTS["allowedOrigins"], synth.app_url(STACK)]
    assert sorted(cors["AllowHeaders"]) == ["authorization", "content-type"]


def test_stage_auto_deploys_with_access_logs_and_throttling(synth):
    (stage,) = _resources(synth, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    assert "DestinationArn" in props["AccessLogSettings"]
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_upload_function_has_exactly_the_upload_rights(synth):
    statements = _role_statements(synth, "UploadApiUploadFunctionRole")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions([s]))]
    assert _actions(s3) == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        # HeadObject, for a retried complete after S3 already finished.
        "s3:GetObject",
        # So that HeadObject of a missing key is 404, not 403.
        "s3:ListBucket",
    }
    for statement in s3:
        if statement["Action"] == "s3:ListBucket":
            assert statement["Condition"] == {
                "StringLike": {"s3:prefix": ["uploads/*"]}
            }
        else:
            assert statement["Resource"]["Fn::Join"][1][-1] == "/uploads/*"
    assert _actions(statements) - _actions(s3) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        # Counting the caller's videos and uploads for the per-user limits.
        "dynamodb:Query",
    }


def test_videos_function_has_only_what_its_routes_do(synth):
    statements = _role_statements(synth, "UploadApiVideosFunctionRole")
    (put,) = [s for s in statements if "s3:PutObject" in _actions([s])]
    # It writes caption files, and no other output.
    assert put["Action"] == "s3:PutObject"
    assert put["Resource"]["Fn::Join"][1][-1] == "/videos/*/captions/*"
    actions = _actions(statements)
    assert actions == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:PutObject",
    }


def test_no_policy_of_ours_grants_a_service_wildcard_or_a_star_resource(synth):
    for logical, policy in _resources(synth, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in _actions([statement]):
                assert not action.endswith(":*"), (logical, action)
                assert action != "*", logical
            if statement["Resource"] == "*":
                # Actions that take no resource-level permission (each
                # acknowledged with its reason in compliance.py).
                assert _actions([statement]) in (
                    {"ecr:GetAuthorizationToken"},
                    {"dynamodb:ListStreams"},
                    # CDK's BucketDeployment invalidating the page's cache.
                    {"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"},
                ), logical


def test_functions_run_the_latest_python_on_arm_with_json_logs(synth):
    for function in _resources(synth, "AWS::Lambda::Function").values():
        props = function["Properties"]
        if "Handler" not in props or not props["Handler"].startswith("lambdas."):
            continue
        assert props["Runtime"] == "python3.14"
        assert props["Architectures"] == ["arm64"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"


@pytest.fixture(scope="module")
def external_issuer_template() -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(), "External")
    UploadApi(
        stack,
        "UploadApi",
        storage=VideoStorage(stack, "Storage", allowed_origins=["https://a.example"]),
        videos=VideoTable(stack, "Videos"),
        limits=UploadLimits(max_upload_bytes=1024**3),
        allowed_origins=["https://a.example"],
        issuer=ExternalIssuer(
            issuer="https://login.example.com/", audience=["app-client"]
        ),
    )
    return dict(Template.from_stack(stack).to_json())


def test_an_external_issuer_replaces_the_user_pool(external_issuer_template):
    resources = external_issuer_template["Resources"].values()
    assert not [r for r in resources if r["Type"].startswith("AWS::Cognito::")]
    (authorizer,) = [
        r for r in resources if r["Type"] == "AWS::ApiGatewayV2::Authorizer"
    ]
    assert authorizer["Properties"]["JwtConfiguration"] == {
        "Audience": ["app-client"],
        "Issuer": "https://login.example.com/",
    }


def test_upload_limits_reach_the_function_environment(synth):
    (function,) = [
        f
        for f in _resources(synth, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "lambdas.upload_api.app.handler"
    ]
    env = function["Properties"]["Environment"]["Variables"]
    assert env["VOD_MAX_UPLOAD_BYTES"] == str(100 * 1024**3)
    assert env["VOD_MIN_PART_BYTES"] == str(8 * 1024**2)
    assert env["VOD_ALLOWED_CONTENT_TYPES"] == "video/*"
    assert env["VOD_PRESIGN_EXPIRES_SECONDS"] == "3600"
    assert env["VOD_UPLOAD_TTL_SECONDS"] == str(4 * 24 * 3600)
    assert env["VOD_SOURCE_BUCKET"] == {"Ref": "StorageSourceBucketB2F37168"}
    assert env["VOD_TABLE_NAME"] == {"Ref": "VideosTable41110721"}
