"""The web app in the template: a private bucket read only by its own
distribution through OAC, the SPA fallback (run in node), the app URL as an
output, and config.json deployed with the stack's values."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cdk_app.config import DEFAULTS
from cdk_app.web_app import SPA_FALLBACK_CODE, WebApp
from tests.conftest import Synthesized

STACK = "Vod"
ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}
_MARKER = re.compile(r"<<marker:0xbaba:\d+>>")


def _web(synth: Synthesized, type_: str) -> tuple[str, dict[str, Any]]:
    ((logical, resource),) = (
        (logical, resource)
        for logical, resource in synth.resources(STACK, type_).items()
        if logical.startswith("WebApp")
    )
    return logical, resource


def test_the_web_bucket_is_private_and_read_only_by_its_distribution(synth):
    bucket, resource = _web(synth, "AWS::S3::Bucket")
    props = resource["Properties"]
    assert props["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    assert "BucketEncryption" in props
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "web/"
    distribution, _ = _web(synth, "AWS::CloudFront::Distribution")
    (policy,) = (
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources(STACK, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    )
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert {"Ref": distribution} in allow["Condition"]["StringEquals"]["AWS:SourceArn"][
        "Fn::Join"
    ][1]
    # The rest only denies: plain http and TLS below 1.2.
    assert {s["Effect"] for s in policy if s is not allow} == {"Deny"}


def test_the_distribution_serves_the_bucket_through_oac_with_the_spa_fallback(synth):
    oac, _ = _web(synth, "AWS::CloudFront::OriginAccessControl")
    function, _ = _web(synth, "AWS::CloudFront::Function")
    bucket, _ = _web(synth, "AWS::S3::Bucket")
    _, distribution = _web(synth, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": [bucket, "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
    assert config["DefaultRootObject"] == "index.html"
    assert "CustomErrorResponses" not in config, "errors stay errors"
    default = config["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default["AllowedMethods"] == ["GET", "HEAD"]
    assert default["FunctionAssociations"] == [
        {
            "EventType": "viewer-request",
            "FunctionARN": {"Fn::GetAtt": [function, "FunctionARN"]},
        }
    ]


def test_the_spa_fallback_sends_routes_to_the_page_and_files_to_s3(synth):
    _, function = _web(synth, "AWS::CloudFront::Function")
    assert function["Properties"]["FunctionCode"] == SPA_FALLBACK_CODE
    uris = ["/", "/videos/abc", "/signed-in/", "/app.js", "/config.json", "/x.js"]
    script = (
        SPA_FALLBACK_CODE
        + f"for (const uri of {json.dumps(uris)}) "
        + "console.log(handler({request: {uri}}).uri)"
    )
    ran = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, check=True
    )
    assert ran.stdout.split() == [
        "/index.html",
        "/index.html",
        "/index.html",
        "/app.js",
        "/config.json",
        "/x.js",
    ]


def test_the_app_url_is_an_output(synth):
    # Its CORS and sign-in redirects: tests/test_cdk_upload_api.py and
    # tests/test_cdk_storage.py.
    outputs = synth.templates[STACK]["Outputs"]
    assert outputs["AppUrl"] == {"Value": synth.app_url(STACK)}


def test_config_json_is_deployed_with_the_stacks_values(synth):
    _, deployment = _web(synth, "Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    assert props["DestinationBucketName"] == {"Ref": _web(synth, "AWS::S3::Bucket")[0]}
    assert props["DistributionPaths"] == ["/*"]
    pages = [
        (synth.outdir / f"asset.{Path(key).stem}", markers)
        for key, markers in zip(
            props["SourceObjectKeys"], props["SourceMarkers"], strict=True
        )
    ]
    assert any((directory / "index.html").is_file() for directory, _ in pages)
    ((text, markers),) = [
        ((directory / "config.json").read_text(), markers)
        for directory, markers in pages
        if (directory / "config.json").is_file()
    ]
    # Each token is a marker that CloudFormation fills in with its value.
    config = json.loads(_MARKER.sub(lambda m: json.dumps(m.group()), text))
    assert config["maxUploadBytes"] == DEFAULTS["maxUploadBytes"]
    assert config["auth"]["scopes"] == ["openid", "email", "profile"]

    def value(marker: str) -> str:
        return json.dumps(markers[marker])

    (api,) = synth.resources(STACK, "AWS::ApiGatewayV2::Api")
    (client,) = synth.resources(STACK, "AWS::Cognito::UserPoolClient")
    (domain,) = synth.resources(STACK, "AWS::Cognito::UserPoolDomain")
    (playback,) = (
        logical
        for logical in synth.resources(STACK, "AWS::CloudFront::Distribution")
        if logical.startswith("Delivery")
    )
    assert json.dumps({"Ref": api}) in value(config["apiUrl"])
    assert json.dumps([playback, "DomainName"]) in value(config["playbackUrl"])
    assert json.dumps({"Ref": client}) in value(config["auth"]["clientId"])
    for key, path in (
        ("authorizeUrl", "/oauth2/authorize"),
        ("tokenUrl", "/oauth2/token"),
        ("logoutUrl", "/logout"),
    ):
        assert json.dumps({"Ref": domain}) in value(config["auth"][key])
        assert value(config["auth"][key]).endswith(f'.amazoncognito.com{path}\\""]]}}')


def test_synth_without_a_built_page_says_how_to_build_it(tmp_path):
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    stack = cdk.Stack(cdk.App(), "NoPage")
    with pytest.raises(ValueError, match=r"make setup.*npm run build:web"):
        WebApp(stack, "WebApp", access_logs=s3.Bucket(stack, "Logs"), dist=tmp_path)


def test_make_summary_shows_the_app_origin_in_the_buckets_cors(synth):
    from cdk_app.summary import summarize

    (distribution,) = (
        logical
        for logical in synth.resources(STACK, "AWS::CloudFront::Distribution")
        if logical.startswith("WebApp")
    )
    summary = summarize(synth.outdir)
    assert f"HEAD from https://<{distribution}.DomainName>" in summary
