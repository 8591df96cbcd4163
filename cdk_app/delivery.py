"""Playback: CloudFront in front of the private output bucket, through Origin
Access Control, with cache rules that fit HLS."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from constructs import Construct

from cdk_app.storage import VideoStorage

#: Segments, init segments, posters, sprites and their index never change once
#: written (a re-transcode writes the same names only before READY).
IMMUTABLE_PATTERNS = ("*.m4s", "*.mp4", "*.jpg", "*.vtt")
#: Playlists: short, so a video that becomes READY (or is re-made) shows up.
PLAYLIST_TTL = Duration.seconds(10)
SEGMENT_TTL = Duration.days(365)


@dataclasses.dataclass(frozen=True)
class PlaybackDomain:
    """A name of yours for playback, and the certificate CloudFront presents
    for it (from ACM in us-east-1)."""

    name: str
    certificate: acm.ICertificate


class VideoDelivery(Construct):
    """A CloudFront distribution serving ``videos/`` from the output bucket.

    :param allowed_origins: browser origins allowed by the CORS response
        headers policy (players on other sites fetch playlists with CORS).
    :param key_group_id: Default None: playback is open to anyone with the
        URL. With an existing CloudFront key group id, every request needs a
        URL or cookie signed by one of the group's keys (private videos).
    :param domain: Default None: playback is served on the distribution's
        *.cloudfront.net name, whose certificate CloudFront fixes at a TLS 1.0
        minimum. With a domain, the distribution serves that name with its
        certificate and TLS 1.2 at least (TLSv1.2_2021), and the playback URLs
        use it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: VideoStorage,
        allowed_origins: Sequence[str],
        key_group_id: str | None = None,
        domain: PlaybackDomain | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.playback_domain = domain
        origin = origins.S3BucketOrigin.with_origin_access_control(
            storage.output_bucket
        )
        self.response_headers_policy = cloudfront.ResponseHeadersPolicy(
            self,
            "PlayerCors",
            comment="CORS for HLS players on the allowed origins",
            cors_behavior=cloudfront.ResponseHeadersCorsBehavior(
                access_control_allow_origins=list(allowed_origins),
                access_control_allow_methods=["GET", "HEAD"],
                access_control_allow_headers=["range"],
                access_control_expose_headers=["content-length", "content-range"],
                access_control_allow_credentials=False,
                access_control_max_age=Duration.hours(1),
                origin_override=True,
            ),
        )
        self.playlist_cache_policy = cloudfront.CachePolicy(
            self,
            "PlaylistCache",
            comment="HLS playlists: short TTL",
            default_ttl=PLAYLIST_TTL,
            min_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(60),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        self.segment_cache_policy = cloudfront.CachePolicy(
            self,
            "SegmentCache",
            comment="HLS segments, posters, sprites: immutable, long TTL",
            default_ttl=SEGMENT_TTL,
            min_ttl=Duration.days(1),
            max_ttl=SEGMENT_TTL,
        )
        trusted = (
            [cloudfront.KeyGroup.from_key_group_id(self, "PlaybackKeys", key_group_id)]
            if key_group_id
            else None
        )

        def behavior(policy: cloudfront.ICachePolicy) -> cloudfront.BehaviorOptions:
            return cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD_OPTIONS,
                cache_policy=policy,
                response_headers_policy=self.response_headers_policy,
                trusted_key_groups=trusted,
                compress=True,
            )

        self.cloudfront_distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Video playback (HLS)",
            default_behavior=behavior(self.playlist_cache_policy),
            additional_behaviors={
                pattern: behavior(self.segment_cache_policy)
                for pattern in IMMUTABLE_PATTERNS
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=storage.access_logs_bucket,
            log_file_prefix="cloudfront/",
            domain_names=[domain.name] if domain else None,
            certificate=domain.certificate if domain else None,
            minimum_protocol_version=(
                cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if domain else None
            ),
        )

    @property
    def playback_base_url(self) -> str:
        if self.playback_domain is not None:
            return f"https://{self.playback_domain.name}"
        return f"https://{self.cloudfront_distribution.distribution_domain_name}"
