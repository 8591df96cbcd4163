"""Context knobs: defaults, CLI-string parsing, and refusals that name the knob,
the value and the allowed range."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk_app.config import (
    DEFAULTS,
    KNOBS,
    ConfigError,
    PlatformConfig,
    Stage,
)
from tests.conftest import ROOT
from vod.costs import FARGATE_LIST_PRICES, FargatePrices
from vod.loudness import LoudnessTarget
from vod.settings import FrameSize, Transcoder


class Context:
    def __init__(self, **values: Any) -> None:
        self.values = values

    def try_get_context(self, key: str) -> Any:
        return self.values.get(key)


def test_cdk_json_carries_exactly_the_documented_defaults():
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    for knob in KNOBS:
        assert context[knob.key] == knob.default, knob.key


def test_cdk_json_turns_cdk_template_validation_into_errors():
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert context["@aws-cdk/core:validateAgainstDefaultRules"] is True


def test_readme_documents_every_knob():
    readme = (ROOT / "README.md").read_text()
    for knob in KNOBS:
        assert f"`{knob.key}`" in readme, f"README lacks the knob {knob.key}"


def test_defaults():
    config = PlatformConfig.from_context(Context())
    assert config == PlatformConfig.defaults()
    assert config.stage is Stage.DEV
    assert config.transcoder is Transcoder.FARGATE
    assert config.abort_incomplete_uploads_after_days == 3
    assert config.originals_transition_after_days is None
    assert config.allowed_origins == tuple(DEFAULTS["allowedOrigins"])


def test_values_given_on_the_command_line_arrive_as_strings_and_are_parsed():
    config = PlatformConfig.from_context(
        Context(
            stage="prod",
            allowedOrigins="https://a.example.com, https://b.example.com:8443",
            abortIncompleteUploadsAfterDays="7",
            originalsTransitionAfterDays="30",
            transcoder="MediaConvert",
            maxUploadBytes="2147483648",
            authCallbackUrls="https://a.example.com/",
            authLogoutUrls="https://a.example.com/",
        )
    )
    assert config.is_prod
    assert config.allowed_origins == (
        "https://a.example.com",
        "https://b.example.com:8443",
    )
    assert config.abort_incomplete_uploads_after_days == 7
    assert config.originals_transition_after_days == 30
    assert config.transcoder is Transcoder.MEDIACONVERT
    assert config.max_upload_bytes == 2 * 1024**3


def test_transcode_limits_and_prices_arrive_as_strings_and_are_parsed():
    config = PlatformConfig.from_context(
        Context(
            chunkSeconds="30",
            hdrLadder="true",
            maxSourceMinutes="90",
            maxFrameSize="1080x1920",
            maxFrameRate="120",
            jobTimeBudgetFactor="2.5",
            fargateUsdPerVcpuHour="0.05",
            mediaConvertProUsdPerMinute="0.02",
        )
    )
    assert config.chunk_seconds == 30
    assert config.hdr_ladder is True
    assert config.max_source_minutes == 90
    assert config.max_frame_size == FrameSize(1920, 1080), "orientation-free"
    assert config.max_frame_rate == 120
    assert config.job_time_budget_factor == 2.5
    assert config.media_convert_pro_usd_per_minute == 0.02


def test_audio_knobs_arrive_as_strings_and_null_turns_normalization_off():
    default = PlatformConfig.defaults()
    assert default.max_audio_tracks == 4
    assert default.loudness == LoudnessTarget(-16, -1)
    config = PlatformConfig.from_context(
        Context(maxAudioTracks="2", loudnessTargetLufs="-23", loudnessTruePeakDbtp="-2")
    )
    assert config.max_audio_tracks == 2
    assert config.loudness == LoudnessTarget(-23, -2)
    off = PlatformConfig.from_context(Context(loudnessTargetLufs="null"))
    assert off.loudness is None


def test_fargate_prices_default_to_the_list_price_of_the_architecture():
    assert PlatformConfig.defaults().fargate_prices == FargatePrices.list_price(
        "x86_64"
    )
    config = PlatformConfig.from_context(
        Context(workerArchitecture="arm64", fargateUsdPerGbHour=0.01)
    )
    assert config.fargate_prices == FargatePrices(
        usd_per_vcpu_hour=FARGATE_LIST_PRICES["arm64"][0], usd_per_gb_hour=0.01
    )


def test_a_json_list_of_origins_is_accepted():
    config = PlatformConfig.from_context(
        Context(allowedOrigins='["https://a.example.com"]')
    )
    assert config.allowed_origins == ("https://a.example.com",)


def test_sign_in_urls_and_domain_prefix_arrive_as_strings_and_are_parsed():
    config = PlatformConfig.from_context(
        Context(
            authCallbackUrls="https://app.example.com/cb, http://localhost:8787/",
            authLogoutUrls='["https://app.example.com/"]',
            authDomainPrefix="vod-videos-1",
        )
    )
    assert config.auth_callback_urls == (
        "https://app.example.com/cb",
        "http://localhost:8787/",
    )
    assert config.auth_logout_urls == ("https://app.example.com/",)
    assert config.auth_domain_prefix == "vod-videos-1"
    assert PlatformConfig.defaults().auth_domain_prefix is None


PROD_URLS = {
    "allowedOrigins": "https://app.example.com",
    "authCallbackUrls": "https://app.example.com/",
    "authLogoutUrls": "https://app.example.com/",
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowedOrigins", "http://localhost:8787"),
        ("allowedOrigins", "https://localhost:8443"),
        ("allowedOrigins", "https://127.0.0.1"),
        ("allowedOrigins", "http://app.example.com"),
        ("allowedOrigins", "https://app.example.com, https://dev.localhost"),
        ("authCallbackUrls", "http://localhost:8787/"),
        ("authLogoutUrls", "https://127.0.0.1:3000/"),
    ],
)
def test_prod_refuses_plain_http_and_local_browser_urls(key, value):
    PlatformConfig.from_context(Context(stage="prod", **PROD_URLS))
    with pytest.raises(ConfigError) as raised:
        PlatformConfig.from_context(Context(stage="prod", **{**PROD_URLS, key: value}))
    message = str(raised.value)
    assert f"'{key}'" in message
    assert "stage=prod" in message
    assert "localhost" in message
    assert "127.0.0.1" in message
    assert f"-c {key}=" in message
    assert PlatformConfig.from_context(Context(stage="dev", **{key: value}))


def test_prod_ignores_the_sign_in_urls_of_a_pool_it_does_not_create():
    config = PlatformConfig.from_context(
        Context(
            stage="prod",
            allowedOrigins="https://app.example.com",
            jwtIssuer="https://login.example.com/",
            jwtAudience="app-client",
        )
    )
    assert config.auth_callback_urls == tuple(DEFAULTS["authCallbackUrls"])


CERTIFICATE = (
    "arn:aws:acm:us-east-1:123456789012:certificate/"
    "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
)


def test_a_playback_domain_comes_with_its_certificate():
    config = PlatformConfig.from_context(
        Context(domainName="video.example.com", certificateArn=CERTIFICATE)
    )
    assert (config.domain_name, config.certificate_arn) == (
        "video.example.com",
        CERTIFICATE,
    )
    for alone in ({"domainName": "video.example.com"}, {"certificateArn": CERTIFICATE}):
        with pytest.raises(ConfigError, match="'domainName' and 'certificateArn' go"):
            PlatformConfig.from_context(Context(**alone))


def test_a_certificate_outside_us_east_1_is_refused_with_the_region():
    elsewhere = CERTIFICATE.replace("us-east-1", "eu-west-1")
    with pytest.raises(ConfigError) as raised:
        PlatformConfig.from_context(
            Context(domainName="video.example.com", certificateArn=elsewhere)
        )
    message = str(raised.value)
    assert "'certificateArn'" in message
    assert "only from us-east-1, and this one is in eu-west-1" in message
    assert "-c certificateArn=" in message


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("stage", "staging", "dev | prod"),
        ("transcoder", "lambda", "fargate | mediaconvert"),
        ("abortIncompleteUploadsAfterDays", 0, "1 to 365"),
        ("abortIncompleteUploadsAfterDays", "three", "1 to 365"),
        ("abortIncompleteUploadsAfterDays", 2.5, "1 to 365"),
        ("abortIncompleteUploadsAfterDays", True, "1 to 365"),
        ("originalsTransitionAfterDays", -1, "1 to 3650"),
        ("maxUploadBytes", 10, "1048576 to"),
        ("maxUploadBytes", 6 * 1024**4, "1048576 to"),
        ("allowedOrigins", [], "origins"),
        ("allowedOrigins", ["localhost:3000"], "origins"),
        ("allowedOrigins", ["https://app.example.com/path"], "origins"),
        ("allowedOrigins", "[not json", "origins"),
        ("authCallbackUrls", ["http://app.example.com/"], "http://localhost URLs"),
        ("authCallbackUrls", "https://app.example.com/#top", "https URLs"),
        ("authLogoutUrls", [], "https URLs"),
        ("authDomainPrefix", "Videos", "lower-case letters"),
        ("authDomainPrefix", "-videos", "not at either end"),
        ("authDomainPrefix", "my-aws-videos", "without aws, amazon or cognito"),
        ("authDomainPrefix", "v" * 64, "1 to 63"),
        ("domainName", "https://video.example.com", "DNS name"),
        ("domainName", "*.example.com", "no wildcard"),
        ("domainName", "localhost", "DNS name"),
        ("certificateArn", "arn:aws:iam::123456789012:server-certificate/x", "ACM"),
        ("certificateArn", CERTIFICATE[:-1], "in us-east-1"),
        ("workerMaxTasks", 101, "1 to 100"),
        ("chunkSeconds", 0, "a multiple of 6 from 6 to 600"),
        ("chunkSeconds", 61, "a multiple of 6 from 6 to 600"),
        ("chunkSeconds", 606, "a multiple of 6 from 6 to 600"),
        ("chunkSeconds", "a minute", "a multiple of 6 from 6 to 600"),
        ("hdrLadder", "yes", "true | false"),
        ("hdrLadder", 1, "true | false"),
        ("maxSourceMinutes", 0, "1 to 1440"),
        ("maxSourceMinutes", 1441, "1 to 1440"),
        ("maxFrameSize", "3840", "WIDTHxHEIGHT like 3840x2160"),
        ("maxFrameSize", "8x8", "each side from 16 to 8192"),
        ("maxFrameSize", "9000x100", "each side from 16 to 8192"),
        ("maxFrameSize", 2160, "WIDTHxHEIGHT"),
        ("maxFrameRate", 0, "1 to 1000"),
        ("maxFrameRate", 1001, "1 to 1000"),
        ("jobTimeBudgetFactor", 0.5, "a number from 1 to 100"),
        ("jobTimeBudgetFactor", "nan", "a number from 1 to 100"),
        ("jobTimeBudgetFactor", True, "a number from 1 to 100"),
        ("fargateUsdPerVcpuHour", 0, "a number above 0"),
        ("fargateUsdPerGbHour", "cheap", "a number above 0"),
        ("mediaConvertBasicUsdPerMinute", -0.01, "a number above 0"),
        ("mediaConvertProUsdPerMinute", "inf", "a number above 0"),
        ("maxAudioTracks", 0, "1 to 16"),
        ("loudnessTargetLufs", -4, "a number from -40 to -5"),
        ("loudnessTargetLufs", "loud", "a number from -40 to -5"),
        ("loudnessTruePeakDbtp", 1, "a number from -8 to 0"),
    ],
)
def test_bad_values_name_the_knob_the_value_and_the_range(key, value, allowed):
    with pytest.raises(ConfigError) as raised:
        PlatformConfig.from_context(Context(**{key: value}))
    message = str(raised.value)
    assert f"'{key}'" in message
    assert allowed in message
    assert f"-c {key}=" in message
