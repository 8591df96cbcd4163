"""Deploy-time settings, read once from CDK context in ``app.py``.

Every knob is declared once in ``KNOBS`` with its default, its allowed range and
the sentence the README shows. ``cdk.json`` carries the same defaults (a test
keeps the two equal), and ``cdk synth -c knob=value`` overrides one. A bad
value stops synth with a message that names the knob, the value and the range.
Constructs never read context themselves: ``app.py`` hands them typed values.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from vod.costs import (
    MEDIACONVERT_BASIC_USD_PER_MINUTE,
    MEDIACONVERT_PRO_USD_PER_MINUTE,
    FargatePrices,
)
from vod.ladder import SEGMENT_SECONDS
from vod.loudness import (
    DEFAULT_LOUDNESS,
    TARGET_LUFS_RANGE,
    TRUE_PEAK_RANGE,
    LoudnessTarget,
)
from vod.settings import FrameSize, Transcoder

GIB = 1024**3
MIB = 1024**2
#: S3's ceiling for one object.
MAX_OBJECT_BYTES = 5 * 1024**4


#: Fargate's memory range (MiB) for each CPU size.
FARGATE_MEMORY_MIB = {
    1024: (2048, 8192),
    2048: (4096, 16384),
    4096: (8192, 30720),
    8192: (16384, 61440),
    16384: (32768, 122880),
}


class ConfigError(ValueError):
    """A context value outside its allowed range."""


class Stage(enum.StrEnum):
    DEV = "dev"
    PROD = "prod"


class ContextReader(Protocol):
    def try_get_context(self, key: str) -> Any: ...


@dataclasses.dataclass(frozen=True)
class Knob:
    key: str
    default: Any
    allowed: str
    doc: str
    parse: Callable[[str, Any], Any]


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(
        f"context knob '{key}' has invalid value {value!r}; allowed: {allowed}. "
        f"Fix it in cdk.json or pass -c {key}=<value>."
    )


def _choice(enum_type: type[enum.StrEnum]) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        try:
            return enum_type(str(value).strip().lower())
        except ValueError:
            raise _fail(key, value, " | ".join(m.value for m in enum_type)) from None

    return parse


def _int_range(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise _fail(key, value, f"an integer from {low} to {high}")
        try:
            number = int(str(value).strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise _fail(key, value, f"an integer from {low} to {high}") from None
        if isinstance(value, float) and value != number:
            raise _fail(key, value, f"an integer from {low} to {high}")
        if not low <= number <= high:
            raise _fail(key, value, f"an integer from {low} to {high}")
        return number

    return parse


def _int_multiple(step: int, high: int) -> Callable[[str, Any], int]:
    allowed = f"a multiple of {step} from {step} to {high}"

    def parse(key: str, value: Any) -> int:
        try:
            number = _int_range(step, high)(key, value)
        except ConfigError:
            raise _fail(key, value, allowed) from None
        if number % step:
            raise _fail(key, value, allowed)
        return number

    return parse


def _number(
    allowed: str, accepts: Callable[[float], bool]
) -> Callable[[str, Any], float]:
    def parse(key: str, value: Any) -> float:
        if isinstance(value, bool):
            raise _fail(key, value, allowed)
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise _fail(key, value, allowed) from None
        if not math.isfinite(number) or not accepts(number):
            raise _fail(key, value, allowed)
        return number

    return parse


def _number_range(low: float, high: float) -> Callable[[str, Any], float]:
    return _number(f"a number from {low:g} to {high:g}", lambda n: low <= n <= high)


def _positive_number() -> Callable[[str, Any], float]:
    return _number("a number above 0", lambda n: n > 0)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise _fail(key, value, "true | false")
    return text == "true"


def _frame_size(low: int, high: int) -> Callable[[str, Any], FrameSize]:
    allowed = f"WIDTHxHEIGHT like 3840x2160, each side from {low} to {high}"

    def parse(key: str, value: Any) -> FrameSize:
        if not isinstance(value, str):
            raise _fail(key, value, allowed)
        try:
            size = FrameSize.parse(value)
        except ValueError:
            raise _fail(key, value, allowed) from None
        if not low <= size.short_side <= size.long_side <= high:
            raise _fail(key, value, allowed)
        return size

    return parse


def _int_choice(*choices: int) -> Callable[[str, Any], int]:
    allowed = " | ".join(str(c) for c in choices)

    def parse(key: str, value: Any) -> int:
        number = _int_range(min(choices), max(choices))(key, value)
        if number not in choices:
            raise _fail(key, value, allowed)
        return number

    return parse


def _optional(
    inner: Callable[[str, Any], Any],
) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in ("", "null")):
            return None
        return inner(key, value)

    return parse


def _string(pattern: re.Pattern[str], allowed: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
            raise _fail(key, value, allowed)
        return value.strip()

    return parse


def _string_list(
    item_pattern: re.Pattern[str], allowed: str
) -> Callable[[str, Any], tuple[str, ...]]:
    def parse(key: str, value: Any) -> tuple[str, ...]:
        items: Any = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    raise _fail(key, value, allowed) from None
            else:
                items = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(items, list | tuple) or not items:
            raise _fail(key, value, allowed)
        for item in items:
            if not isinstance(item, str) or not item_pattern.fullmatch(item):
                raise _fail(key, item, allowed)
        return tuple(items)

    return parse


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")
#: Cognito takes https redirect URLs, and http only for localhost.
_REDIRECT_URL = re.compile(
    r"(https://[A-Za-z0-9.-]+|http://localhost)(:\d{1,5})?(/[^\s#,]*)?"
)
#: Cognito's rule for the prefix of an amazoncognito.com domain.
_DOMAIN_PREFIX = re.compile(
    r"(?!.*(aws|amazon|cognito))[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]+/(\*|[a-z0-9.+-]+)")
_ISSUER = re.compile(r"https://[^\s/]+(/[^\s]*)?")
_AUDIENCE = re.compile(r"[^\s,]{1,256}")
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[A-Za-z]{2,}")


#: A host name CloudFront can serve as an alias (no wildcard: the playback
#: URLs use it).
_DOMAIN_NAME = re.compile(
    r"(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_DOMAIN_NAME_ALLOWED = "a lower-case DNS name like video.example.com, no wildcard"
_CERTIFICATE_ARN = re.compile(
    r"arn:aws:acm:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}:certificate/"
    r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
)
#: CloudFront presents only ACM certificates from this region.
CLOUDFRONT_CERTIFICATE_REGION = "us-east-1"
_CERTIFICATE_ALLOWED = (
    f"an ACM certificate ARN in {CLOUDFRONT_CERTIFICATE_REGION}, like "
    f"arn:aws:acm:{CLOUDFRONT_CERTIFICATE_REGION}:123456789012:certificate/"
    "<uuid>"
)


def _cloudfront_certificate_arn(key: str, value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    match = _CERTIFICATE_ARN.fullmatch(text)
    if match is None:
        raise _fail(key, value, _CERTIFICATE_ALLOWED)
    if match["region"] != CLOUDFRONT_CERTIFICATE_REGION:
        raise _fail(
            key,
            value,
            f"{_CERTIFICATE_ALLOWED}; CloudFront uses certificates only from "
            f"{CLOUDFRONT_CERTIFICATE_REGION}, and this one is in "
            f"{match['region']}: request or import it in "
            f"{CLOUDFRONT_CERTIFICATE_REGION}",
        )
    return match.group(0)


_REDIRECT_URLS = (
    "a non-empty list of https URLs like https://app.example.com/, or "
    "http://localhost URLs"
)
_DOMAIN_PREFIX_ALLOWED = (
    "1 to 63 lower-case letters, digits and hyphens, not at either end, "
    "without aws, amazon or cognito"
)


class Architecture(enum.StrEnum):
    X86_64 = "x86_64"
    ARM64 = "arm64"


KNOBS: tuple[Knob, ...] = (
    Knob(
        "stage",
        "dev",
        "dev | prod",
        "prod retains the buckets and table on stack deletion, turns on "
        "termination protection and the deletion protection of the table and "
        "the user pool, and refuses http and localhost origins and sign-in "
        "URLs; dev destroys them with the stack.",
        _choice(Stage),
    ),
    Knob(
        "allowedOrigins",
        ["http://localhost:3000", "http://localhost:8787"],
        "list of http(s) origins, no path",
        "Browser origins allowed by the buckets', the playback "
        "distribution's and the API's CORS rules, besides the stack's web "
        "app, which is always allowed. The second default is the local demo "
        "page.",
        _string_list(
            _ORIGIN, "a non-empty list of origins like https://app.example.com"
        ),
    ),
    Knob(
        "abortIncompleteUploadsAfterDays",
        3,
        "1 to 365",
        "Days after which S3 aborts an unfinished multipart upload under "
        "uploads/ and frees its parts.",
        _int_range(1, 365),
    ),
    Knob(
        "originalsTransitionAfterDays",
        None,
        "null, or 1 to 3650",
        "Days after which originals under uploads/ move to S3 Glacier Instant "
        "Retrieval. null keeps them in S3 Standard.",
        _optional(_int_range(1, 3650)),
    ),
    Knob(
        "transcoder",
        "fargate",
        "fargate | mediaconvert",
        "Who transcodes: the FFmpeg workers on Fargate, or AWS Elemental MediaConvert.",
        _choice(Transcoder),
    ),
    Knob(
        "maxUploadBytes",
        100 * GIB,
        f"{MIB} to {MAX_OBJECT_BYTES}",
        "Largest upload the API accepts, in bytes (default 100 GiB).",
        _int_range(MIB, MAX_OBJECT_BYTES),
    ),
    Knob(
        "allowedContentTypes",
        ["video/*"],
        "list of MIME types; type/* allowed",
        "Content types the upload API accepts; anything else gets a 400.",
        _string_list(_CONTENT_TYPE, "a non-empty list like video/* or video/mp4"),
    ),
    Knob(
        "minPartSizeMiB",
        8,
        "5 to 5120",
        "Smallest multipart part the API plans; the part size is "
        "max(this, ceil(size / 10000)).",
        _int_range(5, 5120),
    ),
    Knob(
        "presignExpirySeconds",
        3600,
        "60 to 604800",
        "Lifetime of every presigned S3 URL and POST policy the API hands out.",
        _int_range(60, 604800),
    ),
    Knob(
        "maxUploadsInFlightPerUser",
        20,
        "1 to 10000",
        "Uploads one user may have open (UPLOADING) at once; one more gets a 429.",
        _int_range(1, 10000),
    ),
    Knob(
        "maxVideosPerUser",
        1000,
        "1 to 1000000",
        "Videos (of any status) one user may keep; one more upload gets a 429.",
        _int_range(1, 1_000_000),
    ),
    Knob(
        "jwtIssuer",
        None,
        "null, or an https issuer URL",
        "null creates a Cognito user pool whose tokens the API accepts; an "
        "issuer URL (with jwtAudience) uses your own identity provider.",
        _optional(_string_list(_ISSUER, "one https issuer URL")),
    ),
    Knob(
        "jwtAudience",
        None,
        "null, or a list of audiences",
        "Audiences (client ids) accepted from jwtIssuer; required with it.",
        _optional(_string_list(_AUDIENCE, "a non-empty list of audience strings")),
    ),
    Knob(
        "authCallbackUrls",
        ["http://localhost:3000/", "http://localhost:8787/"],
        "list of https URLs; http only for localhost",
        "Where the Cognito app client may send a browser back after sign-in "
        "(authorization code grant with PKCE), besides the web app's URL. "
        "Unused with jwtIssuer.",
        _string_list(_REDIRECT_URL, _REDIRECT_URLS),
    ),
    Knob(
        "authLogoutUrls",
        ["http://localhost:3000/", "http://localhost:8787/"],
        "list of https URLs; http only for localhost",
        "Where the Cognito app client may send a browser back after sign-out. "
        "Unused with jwtIssuer.",
        _string_list(_REDIRECT_URL, _REDIRECT_URLS),
    ),
    Knob(
        "authDomainPrefix",
        None,
        "null, or a prefix of lower-case letters, digits and hyphens",
        "The Cognito hosted sign-in pages, which the web app signs in "
        "through, at https://<prefix>.auth.<region>.amazoncognito.com (stack "
        "output UserPoolDomainUrl); null names them vod-<the UUID in the "
        "stack's id>. Unused with jwtIssuer.",
        _optional(_string(_DOMAIN_PREFIX, _DOMAIN_PREFIX_ALLOWED)),
    ),
    Knob(
        "jobsMaxReceiveCount",
        3,
        "1 to 100",
        "Deliveries of a transcode job before it moves to the dead-letter queue.",
        _int_range(1, 100),
    ),
    Knob(
        "workerCpu",
        2048,
        "1024 | 2048 | 4096 | 8192 | 16384",
        "Fargate CPU units per worker task.",
        _int_choice(1024, 2048, 4096, 8192, 16384),
    ),
    Knob(
        "workerMemoryMiB",
        4096,
        "2048 to 122880, valid for workerCpu",
        "Memory per worker task.",
        _int_range(2048, 122880),
    ),
    Knob(
        "workerArchitecture",
        "x86_64",
        "x86_64 | arm64",
        "CPU architecture of the worker image and tasks. arm64 (Graviton) is "
        "about 20% cheaper for x264; choose it when the deploying machine "
        "builds arm64 images (an arm64 host, or Docker with QEMU/buildx).",
        _choice(Architecture),
    ),
    Knob(
        "workerEphemeralStorageGiB",
        50,
        "21 to 200",
        "Task disk for the source and the outputs; the worker refuses a source "
        "that does not fit.",
        _int_range(21, 200),
    ),
    Knob(
        "workerMaxTasks",
        10,
        "1 to 100",
        "Most worker tasks running at once; the service scales from 0 on the "
        "jobs queue's backlog, and every chunk of a long video is a job.",
        _int_range(1, 100),
    ),
    Knob(
        "workerSpotPercent",
        0,
        "0 to 100",
        "Share of worker tasks placed on Fargate Spot. The worker hands its job "
        "back on Spot's SIGTERM, so interruptions only cost time.",
        _int_range(0, 100),
    ),
    Knob(
        "chunkSeconds",
        60,
        f"a multiple of {SEGMENT_SECONDS} from {SEGMENT_SECONDS} to 600",
        "A source longer than this is encoded in chunks of this many seconds, "
        "each a job of its own, by up to workerMaxTasks workers at once.",
        _int_multiple(SEGMENT_SECONDS, 600),
    ),
    Knob(
        "hdrLadder",
        False,
        "true | false",
        "Every PQ or HLG (HDR) source is tone-mapped to the SDR ladder; true "
        "also gives a 10-bit one HEVC Main 10 rungs in its own range (the top "
        "three rungs' sizes and caps), which HDR screens play.",
        _flag,
    ),
    Knob(
        "maxSourceMinutes",
        360,
        "1 to 1440",
        "Longest source the workers transcode; a longer one ends FAILED.",
        _int_range(1, 1440),
    ),
    Knob(
        "maxFrameSize",
        "3840x2160",
        "WIDTHxHEIGHT, each side 16 to 8192",
        "Largest source frame the workers transcode, in either orientation; a "
        "larger one ends FAILED.",
        _frame_size(16, 8192),
    ),
    Knob(
        "maxFrameRate",
        240,
        "1 to 1000",
        "Highest source frame rate the workers transcode; a higher one ends FAILED.",
        _int_range(1, 1000),
    ),
    Knob(
        "jobTimeBudgetFactor",
        10,
        "a number from 1 to 100",
        "A worker task may take this many seconds per second of media it "
        "encodes, plus 120 s, before it is stopped and its video FAILS.",
        _number_range(1, 100),
    ),
    Knob(
        "maxAudioTracks",
        4,
        "1 to 16",
        "A source's first this many audio tracks each become an AAC rendition "
        "(the first the default); further tracks are dropped.",
        _int_range(1, 16),
    ),
    Knob(
        "loudnessTargetLufs",
        DEFAULT_LOUDNESS.integrated,
        f"null, or a number from {TARGET_LUFS_RANGE[0]:g} to {TARGET_LUFS_RANGE[1]:g}",
        "Integrated loudness (EBU R128, LUFS) every audio track is normalized "
        "to, in two passes; null leaves the audio's loudness as it is.",
        _optional(_number_range(*TARGET_LUFS_RANGE)),
    ),
    Knob(
        "loudnessTruePeakDbtp",
        DEFAULT_LOUDNESS.true_peak,
        f"a number from {TRUE_PEAK_RANGE[0]:g} to {TRUE_PEAK_RANGE[1]:g}",
        "Ceiling (dBTP) of the normalized audio's true peak.",
        _number_range(*TRUE_PEAK_RANGE),
    ),
    Knob(
        "fargateUsdPerVcpuHour",
        None,
        "null, or a number above 0",
        "Price of a worker vCPU-hour for the READY record's cost; null is the "
        "us-east-1 on-demand list price for workerArchitecture.",
        _optional(_positive_number()),
    ),
    Knob(
        "fargateUsdPerGbHour",
        None,
        "null, or a number above 0",
        "Price of a worker GB-hour of memory for the READY record's cost; null "
        "is the us-east-1 on-demand list price for workerArchitecture.",
        _optional(_positive_number()),
    ),
    Knob(
        "mediaConvertBasicUsdPerMinute",
        MEDIACONVERT_BASIC_USD_PER_MINUTE,
        "a number above 0",
        "Price of a MediaConvert Basic-tier normalized minute, for the READY "
        "record's cost (default: us-east-1 on-demand list price).",
        _positive_number(),
    ),
    Knob(
        "mediaConvertProUsdPerMinute",
        MEDIACONVERT_PRO_USD_PER_MINUTE,
        "a number above 0",
        "Price of a MediaConvert Professional-tier normalized minute (what an "
        "accelerated job bills), for the READY record's cost.",
        _positive_number(),
    ),
    Knob(
        "playbackKeyGroupId",
        None,
        "null, or a CloudFront key group id",
        "null serves playback to anyone with the URL; a key group id makes "
        "CloudFront require URLs or cookies signed by one of its keys.",
        _optional(_string_list(re.compile(r"[A-Za-z0-9-]{1,128}"), "a key group id")),
    ),
    Knob(
        "domainName",
        None,
        "null, or a DNS name like video.example.com; with certificateArn",
        "null serves playback on the distribution's *.cloudfront.net name, "
        "whose certificate admits TLS 1.0; a name (with certificateArn) is the "
        "distribution's alias, served with TLS 1.2 at least, and the playback "
        "URLs use it.",
        _optional(_string(_DOMAIN_NAME, _DOMAIN_NAME_ALLOWED)),
    ),
    Knob(
        "certificateArn",
        None,
        f"null, or an ACM certificate ARN in {CLOUDFRONT_CERTIFICATE_REGION}; "
        "with domainName",
        "The certificate CloudFront presents for domainName; it must cover it.",
        _optional(_cloudfront_certificate_arn),
    ),
    Knob(
        "eventsEmail",
        None,
        "null, or an email address",
        "Receives every lifecycle event (UPLOADED, READY, FAILED) through SNS.",
        _optional(_string_list(_EMAIL, "an email address")),
    ),
    Knob(
        "alarmEmail",
        None,
        "null, or an email address",
        "Receives every alarm through the alarms SNS topic.",
        _optional(_string_list(_EMAIL, "an email address")),
    ),
    Knob(
        "oldestJobAlarmMinutes",
        30,
        "1 to 1440",
        "Alarm when a transcode job has waited this long for a worker.",
        _int_range(1, 1440),
    ),
    Knob(
        "autoCaptions",
        False,
        "true | false",
        "Caption every video that reaches READY with Amazon Transcribe "
        "(language identified from the audio; billed per minute), as a "
        "track marked auto. An uploaded track of the language wins.",
        _flag,
    ),
)

DEFAULTS: Mapping[str, Any] = {knob.key: knob.default for knob in KNOBS}


@dataclasses.dataclass(frozen=True)
class PlatformConfig:
    stage: Stage
    allowed_origins: tuple[str, ...]
    abort_incomplete_uploads_after_days: int
    originals_transition_after_days: int | None
    transcoder: Transcoder
    max_upload_bytes: int
    allowed_content_types: tuple[str, ...]
    min_part_size_mib: int
    presign_expiry_seconds: int
    max_uploads_in_flight_per_user: int
    max_videos_per_user: int
    jwt_issuer: tuple[str, ...] | None
    jwt_audience: tuple[str, ...] | None
    auth_callback_urls: tuple[str, ...]
    auth_logout_urls: tuple[str, ...]
    auth_domain_prefix: str | None
    jobs_max_receive_count: int
    worker_cpu: int
    worker_memory_mib: int
    worker_architecture: Architecture
    worker_ephemeral_storage_gib: int
    worker_max_tasks: int
    worker_spot_percent: int
    chunk_seconds: int
    hdr_ladder: bool
    max_source_minutes: int
    max_frame_size: FrameSize
    max_frame_rate: int
    job_time_budget_factor: float
    max_audio_tracks: int
    loudness_target_lufs: float | None
    loudness_true_peak_dbtp: float
    fargate_usd_per_vcpu_hour: float | None
    fargate_usd_per_gb_hour: float | None
    media_convert_basic_usd_per_minute: float
    media_convert_pro_usd_per_minute: float
    playback_key_group_id: tuple[str, ...] | None
    domain_name: str | None
    certificate_arn: str | None
    events_email: tuple[str, ...] | None
    alarm_email: tuple[str, ...] | None
    oldest_job_alarm_minutes: int
    auto_captions: bool

    def __post_init__(self) -> None:
        if (self.jwt_issuer is None) != (self.jwt_audience is None):
            raise ConfigError(
                "context knobs 'jwtIssuer' and 'jwtAudience' go together: set "
                "both to use your own identity provider, or neither for Cognito."
            )
        if (self.domain_name is None) != (self.certificate_arn is None):
            raise ConfigError(
                "context knobs 'domainName' and 'certificateArn' go together: "
                "set both to serve playback on your domain (the certificate "
                "must cover it), or neither for the distribution's "
                "*.cloudfront.net name: -c domainName=video.example.com -c "
                "certificateArn=arn:aws:acm:us-east-1:<account>:certificate/<id>"
            )
        if self.jwt_issuer is not None and len(self.jwt_issuer) != 1:
            raise _fail("jwtIssuer", list(self.jwt_issuer), "one https issuer URL")
        if self.is_prod:
            self._refuse_local_urls()
        low, high = FARGATE_MEMORY_MIB[self.worker_cpu]
        if not low <= self.worker_memory_mib <= high:
            raise _fail(
                "workerMemoryMiB",
                self.worker_memory_mib,
                f"{low} to {high} for workerCpu={self.worker_cpu}",
            )

    def _refuse_local_urls(self) -> None:
        """A prod stack must not trust a page on the deployer's machine, nor
        one served over plain http, with CORS or with sign-in redirects."""
        browser_urls = {"allowedOrigins": self.allowed_origins}
        if self.jwt_issuer is None:
            browser_urls["authCallbackUrls"] = self.auth_callback_urls
            browser_urls["authLogoutUrls"] = self.auth_logout_urls
        for key, urls in browser_urls.items():
            for url in urls:
                if _is_local_or_plain_http(url):
                    raise ConfigError(
                        f"context knob '{key}' has {url!r}, which stage=prod "
                        "does not allow: a prod stack accepts only https URLs "
                        "whose host is not localhost or a loopback address "
                        f"such as 127.0.0.1. Pass -c {key}=<your app's https "
                        "URLs>, or deploy with -c stage=dev."
                    )

    @property
    def issuer(self) -> str | None:
        return self.jwt_issuer[0] if self.jwt_issuer else None

    @property
    def key_group_id(self) -> str | None:
        return self.playback_key_group_id[0] if self.playback_key_group_id else None

    @property
    def events_address(self) -> str | None:
        return self.events_email[0] if self.events_email else None

    @property
    def alarm_address(self) -> str | None:
        return self.alarm_email[0] if self.alarm_email else None

    @property
    def fargate_prices(self) -> FargatePrices:
        """The price knobs, each null one replaced by the list price for the
        workers' architecture."""
        listed = FargatePrices.list_price(self.worker_architecture.value)
        vcpu, gb = self.fargate_usd_per_vcpu_hour, self.fargate_usd_per_gb_hour
        return FargatePrices(
            usd_per_vcpu_hour=listed.usd_per_vcpu_hour if vcpu is None else vcpu,
            usd_per_gb_hour=listed.usd_per_gb_hour if gb is None else gb,
        )

    @property
    def loudness(self) -> LoudnessTarget | None:
        """The audio's loudness target; None with the normalization off."""
        if self.loudness_target_lufs is None:
            return None
        return LoudnessTarget(self.loudness_target_lufs, self.loudness_true_peak_dbtp)

    @property
    def is_prod(self) -> bool:
        return self.stage is Stage.PROD

    @classmethod
    def from_context(cls, node: ContextReader) -> PlatformConfig:
        values: dict[str, Any] = {}
        for knob in KNOBS:
            raw = node.try_get_context(knob.key)
            values[_attribute(knob.key)] = knob.parse(
                knob.key, knob.default if raw is None else raw
            )
        return cls(**values)

    @classmethod
    def defaults(cls) -> PlatformConfig:
        return cls(
            **{_attribute(k.key): k.parse(k.key, k.default) for k in KNOBS},
        )


def _is_local_or_plain_http(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _attribute(key: str) -> str:
    key = key.replace("MiB", "Mib").replace("GiB", "Gib")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
