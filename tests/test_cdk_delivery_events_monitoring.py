"""Playback through CloudFront with OAC, lifecycle events on EventBridge, the
dashboard, the alarms and the stack outputs."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from cdk_app.database import VideoTable
from cdk_app.delivery import VideoDelivery
from cdk_app.events import VideoEvents
from cdk_app.storage import VideoStorage
from tests.conftest import PROD_KNOBS, Synthesized, cdk_json_context
from worker.storage import GROWING_PLAYLIST_CACHE, PLAYLIST_CACHE

STACK = "Vod"


def _only(synth: Synthesized, type_: str) -> tuple[str, Any]:
    ((logical, resource),) = synth.resources(STACK, type_).items()
    return logical, resource


def _playback(synth: Synthesized, type_: str) -> tuple[str, Any]:
    """The playback distribution's resource of ``type_`` (the web app has its
    own distribution, OAC and headers policy: tests/test_cdk_web_app.py)."""
    ((logical, resource),) = (
        (logical, resource)
        for logical, resource in synth.resources(STACK, type_).items()
        if logical.startswith("Delivery")
    )
    return logical, resource


def _distribution(synth: Synthesized) -> Any:
    return _playback(synth, "AWS::CloudFront::Distribution")[1]["Properties"][
        "DistributionConfig"
    ]


def test_output_bucket_is_read_only_by_the_distribution_through_oac(synth):
    oac, _ = _playback(synth, "AWS::CloudFront::OriginAccessControl")
    distribution_id, _ = _playback(synth, "AWS::CloudFront::Distribution")
    (origin,) = _distribution(synth)["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.resources(STACK, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "StorageOutputBucketCD2EEB3A"}
    ]
    (statements,) = policies
    (grant,) = [s for s in statements if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert grant["Action"] == "s3:GetObject"
    assert json.dumps(distribution_id) in json.dumps(grant["Condition"])


def test_every_behavior_is_https_only_with_hls_cache_rules(synth):
    config = _distribution(synth)
    policies = synth.resources(STACK, "AWS::CloudFront::CachePolicy")
    ttl = {
        logical: p["Properties"]["CachePolicyConfig"]["DefaultTTL"]
        for logical, p in policies.items()
    }
    default = config["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "https-only"
    assert ttl[default["CachePolicyId"]["Ref"]] == 10, "playlists: short TTL"
    by_pattern = {b["PathPattern"]: b for b in config["CacheBehaviors"]}
    assert set(by_pattern) == {"*.m4s", "*.mp4", "*.jpg", "*.vtt"}
    for behavior in by_pattern.values():
        assert behavior["ViewerProtocolPolicy"] == "https-only"
        assert ttl[behavior["CachePolicyId"]["Ref"]] == 365 * 24 * 3600
    assert config["Logging"]["Prefix"] == "cloudfront/"


def test_a_growing_playlist_is_cached_no_longer_than_the_worker_asks(synth):
    """A chunked video's EVENT playlists say max-age=2 and the final ones
    max-age=60: the playlist policy lets the origin go down to 0 and up to
    60, so players see new chunks within seconds of their landing."""
    config = _distribution(synth)
    policies = synth.resources(STACK, "AWS::CloudFront::CachePolicy")
    playlists = policies[config["DefaultCacheBehavior"]["CachePolicyId"]["Ref"]]
    ttl = playlists["Properties"]["CachePolicyConfig"]
    assert ttl["MinTTL"] == 0
    assert ttl["MaxTTL"] == 60
    assert GROWING_PLAYLIST_CACHE == "max-age=2"
    assert PLAYLIST_CACHE == "max-age=60"


def test_player_cors_comes_from_a_response_headers_policy(synth):
    logical, policy = _playback(synth, "AWS::CloudFront::ResponseHeadersPolicy")
    cors = policy["Properties"]["ResponseHeadersPolicyConfig"]["CorsConfig"]
    assert cors["AccessControlAllowOrigins"]["Items"] == [
        "http://localhost:3000",
        "http://localhost:8787",
        synth.app_url(STACK),
    ]
    assert _distribution(synth)["DefaultCacheBehavior"]["ResponseHeadersPolicyId"] == {
        "Ref": logical
    }


def _playback_base_urls(synth: Synthesized) -> list[Any]:
    envs = [
        f["Properties"]["Environment"]["Variables"]
        for f in synth.resources(STACK, "AWS::Lambda::Function").values()
        if "VOD_PLAYBACK_BASE_URL"
        in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(envs) == 2, "the videos API and the event publisher"
    return [env["VOD_PLAYBACK_BASE_URL"] for env in envs]


def test_playback_urls_use_the_distribution_domain(synth):
    distribution_id, _ = _playback(synth, "AWS::CloudFront::Distribution")
    expected = {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]
    }
    assert _playback_base_urls(synth) == [expected, expected]
    # Without a domain of its own the distribution has only the
    # *.cloudfront.net certificate (TLS 1.0 and up; README, Playback).
    synth.template(STACK).has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "Aliases": Match.absent(),
                "ViewerCertificate": Match.absent(),
            }
        },
    )


def test_a_domain_of_yours_is_served_with_its_certificate_and_tls_1_2(synth_prod):
    synth_prod.template(STACK).has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": {
                "Aliases": [PROD_KNOBS["domainName"]],
                "ViewerCertificate": {
                    "AcmCertificateArn": PROD_KNOBS["certificateArn"],
                    "MinimumProtocolVersion": "TLSv1.2_2021",
                    "SslSupportMethod": "sni-only",
                },
            }
        },
    )
    expected = f"https://{PROD_KNOBS['domainName']}"
    assert _playback_base_urls(synth_prod) == [expected, expected]


def test_status_changes_stream_to_the_event_publisher(synth):
    _, table = _only(synth, "AWS::DynamoDB::Table")
    assert table["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    }
    (props,) = [
        m["Properties"]
        for m in synth.resources(STACK, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"]
        == {"Fn::GetAtt": ["VideosTable41110721", "StreamArn"]}
        and "EventsPublisher" in m["Properties"]["FunctionName"]["Ref"]
    ]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in props["DestinationConfig"]
    bus, _ = _only(synth, "AWS::Events::EventBus")
    (publisher,) = [
        f
        for f in synth.resources(STACK, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "lambdas.events.app.handler"
    ]
    assert publisher["Properties"]["Environment"]["Variables"][
        "VOD_EVENT_BUS_NAME"
    ] == {"Ref": bus}


def _alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return synth.resources(STACK, "AWS::CloudWatch::Alarm")


def test_alarms_cover_dead_letters_failed_ingests_job_age_5xx_and_functions(synth):
    alarms = {
        k: v["Properties"] for k, v in _alarms(synth).items() if "Monitoring" in k
    }
    names = set(alarms)

    def one(fragment: str) -> Any:
        (match,) = [alarms[n] for n in names if fragment in n]
        return match

    dead_lettered = one("JobsDeadLettered")
    # The dead-jobs function empties the queue: arrivals show as receives.
    assert dead_lettered["MetricName"] == "NumberOfMessagesReceived"
    assert (dead_lettered["Statistic"], dead_lettered["Period"]) == ("Sum", 300)
    assert dead_lettered["Threshold"] == 0
    assert "TranscoderJobsDeadLetterQueue" in json.dumps(dead_lettered["Dimensions"])
    receives = cdk_json_context()["jobsMaxReceiveCount"]
    assert f"delivered {receives} times" in dead_lettered["AlarmDescription"]
    ingest_failed = one("IngestFailed")
    # Nothing consumes the ingest failures queue: a failed event stays visible.
    assert ingest_failed["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (ingest_failed["Statistic"], ingest_failed["Threshold"]) == ("Maximum", 0)
    assert "IngestFailures" in json.dumps(ingest_failed["Dimensions"])
    assert one("OldestJobAge")["Threshold"] == 30 * 60
    rate = one("Api5xxRate")
    assert "100 * errors / MAX([requests, 1])" in json.dumps(rate["Metrics"])
    assert rate["Threshold"] == 1
    for function in (
        "UploadFunction",
        "VideosFunction",
        "IngestFunction",
        "Publisher",
        "CaptionsPublisher",
        "DeadJobsFunction",
    ):
        assert one(f"Monitoring{function}Errors")["MetricName"] == "Errors"
    topic, _ = _only(synth, "AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_the_dead_letter_alarm_counts_the_deliveries_the_knob_allows(synth_prod):
    receives = PROD_KNOBS["jobsMaxReceiveCount"]
    assert receives != cdk_json_context()["jobsMaxReceiveCount"]
    template = synth_prod.template(STACK)
    template.has_resource_properties(
        "AWS::SQS::Queue", {"RedrivePolicy": {"maxReceiveCount": receives}}
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "AlarmDescription": Match.string_like_regexp(
                f"^A transcode job was delivered {receives} times without finishing"
            )
        },
    )


def test_alarm_topic_is_encrypted_and_ssl_only(synth):
    _, topic = _only(synth, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" in topic["Properties"]
    (policy,) = synth.resources(STACK, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny"
        and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        for s in statements
    )


def test_dashboard_shows_api_lambdas_queue_workers_and_videos(synth):
    _, dashboard = _only(synth, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for expected in (
        "API requests and errors",
        "API latency",
        "Lambda errors and throttles",
        "Lambda duration (p99)",
        "Transcode queue",
        "ApproximateAgeOfOldestMessage",
        "Running worker tasks",
        "VideosReady",
        "VideosFailed",
        "VodPlatform",
    ):
        assert expected in body, expected


def test_stack_outputs_name_what_users_need(synth):
    outputs = set(synth.templates[STACK]["Outputs"])
    assert {
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "SourceBucketName",
        "OutputBucketName",
        "DistributionDomainName",
        "DashboardName",
        "EventBusName",
        "IngestFailuresQueueUrl",
    } <= outputs


@pytest.fixture(scope="module")
def private_and_notified() -> dict[str, Any]:
    stack = cdk.Stack(cdk.App(), "Private")
    storage = VideoStorage(stack, "Storage", allowed_origins=["https://a.example"])
    VideoDelivery(
        stack,
        "Delivery",
        storage=storage,
        allowed_origins=["https://a.example"],
        key_group_id="K2JCJMDEHXQW5F",
    )
    VideoEvents(
        stack,
        "Events",
        videos=VideoTable(stack, "Videos"),
        playback_base_url="https://example.cloudfront.net",
        notification_email="ops@example.com",
    )
    return dict(Template.from_stack(stack).to_json())


def test_a_key_group_makes_every_behavior_require_signed_requests(
    private_and_notified,
):
    (distribution,) = [
        r
        for r in private_and_notified["Resources"].values()
        if r["Type"] == "AWS::CloudFront::Distribution"
    ]
    config = distribution["Properties"]["DistributionConfig"]
    for behavior in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behavior["TrustedKeyGroups"] == ["K2JCJMDEHXQW5F"]


def test_an_events_email_subscribes_to_every_lifecycle_event(private_and_notified):
    resources = private_and_notified["Resources"].values()
    (subscription,) = [r for r in resources if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    (rule,) = [r for r in resources if r["Type"] == "AWS::Events::Rule"]
    assert rule["Properties"]["EventPattern"] == {
        "source": ["vod.platform"],
        "detail-type": ["Video Status Changed"],
    }
