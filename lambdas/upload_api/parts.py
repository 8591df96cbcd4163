"""Multipart arithmetic and the part-list rules of the upload API: pure
functions, no AWS. Each rule raises ``Invalid`` naming the field."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import math
from collections.abc import Iterable
from typing import Any

from lambdas.api_edge import text_int, to_int
from lambdas.errors import Invalid

#: S3's limits for one multipart upload.
S3_MAX_PARTS = 10_000
S3_MAX_PART_BYTES = 5 * 1024**3
S3_MAX_OBJECT_BYTES = 5 * 1024**4
#: S3's ceiling for one PutObject or POST-policy upload.
S3_MAX_SINGLE_UPLOAD_BYTES = 5 * 1024**3
#: Part URLs signed per call. A URL signed with a Lambda role's session token
#: is about 2.2 KB, so 400 of them keep the largest response under 1 MB,
#: far from Lambda's 6 MB cap, and a 10,000-part upload needs 25 calls.
MAX_PARTS_PER_CALL = 400
#: S3 ETags are quoted hex digests (with a "-N" suffix for multipart ones).
MAX_ETAG_CHARS = 1024


@dataclasses.dataclass(frozen=True)
class PartPlan:
    part_size: int
    part_count: int | None
    size: int | None = None

    def part_length(self, number: int) -> int | None:
        """Part ``number``'s exact length in an upload of known size: the
        part size, less for the last part."""
        if self.size is None or self.part_count is None:
            return None
        if number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)


def plan_parts(
    size: int | None, *, min_part_bytes: int, max_upload_bytes: int
) -> PartPlan:
    """The part size is ``max(min_part_bytes, ceil(size / 10,000))``; without a
    size the client gets the minimum and no count."""
    if size is None:
        return PartPlan(part_size=min_part_bytes, part_count=None)
    if size > max_upload_bytes:
        raise Invalid(
            f"size {size} is above the maximum upload of {max_upload_bytes} bytes"
        )
    part_size = max(min_part_bytes, math.ceil(size / S3_MAX_PARTS))
    if part_size > S3_MAX_PART_BYTES:
        raise Invalid(
            f"size {size} would need more than {S3_MAX_PARTS} parts of at most "
            f"{S3_MAX_PART_BYTES} bytes",
        )
    return PartPlan(
        part_size=part_size,
        part_count=max(1, math.ceil(size / part_size)),
        size=size,
    )


def part_number(
    value: object, *, part_count: int | None, name: str = "partNumber"
) -> int:
    """An integer from 1 to 10,000, and at most the upload's part count."""
    number = to_int(value, name, low=1, high=S3_MAX_PARTS)
    if part_count is not None and number > part_count:
        raise Invalid(
            f"{name} {number} is above this upload's part count of {part_count}"
        )
    return number


def part_numbers(
    values: object, *, part_count: int | None, name: str = "partNumbers"
) -> list[int]:
    """1 to MAX_PARTS_PER_CALL distinct part numbers, in the order given."""
    if not isinstance(values, list) or not values:
        raise Invalid(f"{name} must be a non-empty list of part numbers")
    if len(values) > MAX_PARTS_PER_CALL:
        raise Invalid(
            f"{name} has {len(values)} entries; sign at most "
            f"{MAX_PARTS_PER_CALL} per call and page through the rest",
        )
    numbers = [part_number(v, part_count=part_count, name=name) for v in values]
    _no_duplicates(numbers, name)
    return numbers


def first_parts(wanted: int, part_count: int) -> range:
    """The part numbers whose URLs a create answer carries: from 1, at most
    ``wanted``, the part count, and one sign call's worth."""
    return range(1, min(wanted, part_count, MAX_PARTS_PER_CALL) + 1)


def comma_part_numbers(text: str, *, part_count: int | None) -> list[int]:
    """``partNumbers=1,2,3`` as the Companion batch route sends it."""
    return part_numbers(
        [
            text_int(item, "partNumbers", low=1, high=S3_MAX_PARTS)
            for item in text.split(",")
        ],
        part_count=part_count,
    )


#: The additional checksum an upload may ask S3 to verify part by part.
CHECKSUM_ALGORITHM = "SHA256"
_SHA256_BYTES = 32


def sha256_checksum(value: object, name: str) -> str:
    """A part's SHA-256 as S3's ``x-amz-checksum-sha256`` carries it:
    base64 of the 32-byte digest."""
    if isinstance(value, str):
        try:
            if len(base64.b64decode(value, validate=True)) == _SHA256_BYTES:
                return value
        except (binascii.Error, ValueError):
            pass
    raise Invalid(f"{name} must be a part's SHA-256 digest in base64")


def part_checksums(value: object, name: str = "checksums") -> dict[int, str]:
    """``{"<part number>": "<base64 SHA-256>"}``."""
    if not isinstance(value, dict):
        raise Invalid(f"{name} must map part numbers to SHA-256 digests")
    checksums: dict[int, str] = {}
    for raw, checksum in value.items():
        where = f"{name}.{raw}"
        number = text_int(str(raw), where, low=1, high=S3_MAX_PARTS)
        checksums[number] = sha256_checksum(checksum, where)
    return checksums


def composite_sha256(checksums: Iterable[str]) -> str:
    """S3's checksum of a multipart object with SHA-256 parts: the SHA-256
    of the parts' digests, in order, then ``-`` and the part count."""
    digests = [base64.b64decode(c) for c in checksums]
    whole = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    return f"{whole}-{len(digests)}"


def completed_parts(
    value: object, *, part_count: int | None, checksums: bool = False
) -> list[dict[str, Any]]:
    """``[{PartNumber, ETag}]`` for CompleteMultipartUpload: unique and
    ascending, as S3 requires; extra keys (Uppy sends ``Size``) are dropped.
    With ``checksums`` each part carries its ``ChecksumSHA256`` too."""
    if not isinstance(value, list) or not value:
        raise Invalid("parts must be a non-empty list of {PartNumber, ETag}")
    if len(value) > S3_MAX_PARTS:
        raise Invalid(f"parts has more than {S3_MAX_PARTS} entries")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(value):
        where = f"parts[{index}]"
        if not isinstance(part, dict):
            raise Invalid(f"{where} must be an object with PartNumber and ETag")
        number = part_number(
            part.get("PartNumber"), part_count=part_count, name=f"{where}.PartNumber"
        )
        etag = part.get("ETag")
        if not isinstance(etag, str) or not etag.strip() or len(etag) > MAX_ETAG_CHARS:
            raise Invalid(f"{where}.ETag must be a non-empty string")
        if parts and number <= parts[-1]["PartNumber"]:
            problem = "duplicates" if number == parts[-1]["PartNumber"] else "follows"
            raise Invalid(
                f"{where}.PartNumber {number} {problem} part "
                f"{parts[-1]['PartNumber']}; list parts once each, in ascending order",
            )
        entry = {"PartNumber": number, "ETag": etag}
        if checksums:
            entry["ChecksumSHA256"] = sha256_checksum(
                part.get("ChecksumSHA256"), f"{where}.ChecksumSHA256"
            )
        parts.append(entry)
    return parts


def _no_duplicates(numbers: Iterable[int], name: str) -> None:
    seen: set[int] = set()
    for number in numbers:
        if number in seen:
            raise Invalid(f"{name} lists part {number} more than once")
        seen.add(number)
