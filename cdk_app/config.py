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
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

GIB = 1024**3
MIB = 1024**2
#: S3's ceiling for one object.
MAX_OBJECT_BYTES = 5 * 1024**4


class ConfigError(ValueError):
    """A context value outside its allowed range."""


class Stage(enum.StrEnum):
    DEV = "dev"
    PROD = "prod"


class Transcoder(enum.StrEnum):
    FARGATE = "fargate"
    MEDIACONVERT = "mediaconvert"


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


def _optional(
    inner: Callable[[str, Any], Any],
) -> Callable[[str, Any], Any]:
    def parse(key: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in ("", "null")):
            return None
        return inner(key, value)

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

KNOBS: tuple[Knob, ...] = (
    Knob(
        "stage",
        "dev",
        "dev | prod",
        "prod retains the bucket and table on stack deletion and turns on "
        "termination protection; dev destroys them with the stack.",
        _choice(Stage),
    ),
    Knob(
        "allowedOrigins",
        ["http://localhost:3000", "http://localhost:8787"],
        "list of http(s) origins, no path",
        "Browser origins allowed by the buckets' and the API's CORS rules. "
        "The second default is the local demo page.",
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


def _attribute(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
