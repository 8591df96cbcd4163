"""The upload API's pure rules: part arithmetic, part lists, content types,
the Uppy 6 request shapes, and the settings it reads. No AWS."""

from __future__ import annotations

import math

import pytest

from lambdas.errors import Invalid
from lambdas.upload_api.parts import (
    MAX_PARTS_PER_CALL,
    S3_MAX_PART_BYTES,
    S3_MAX_PARTS,
    comma_part_numbers,
    completed_parts,
    part_number,
    part_numbers,
    plan_parts,
)
from lambdas.upload_api.rules import (
    S3Operation,
    content_type,
    guess_content_type,
    s3_operation,
)
from vod.settings import Env, MissingSetting, UploadApiSettings

MIB = 1024 * 1024
GIB = 1024 * MIB
PLAN = {"min_part_bytes": 8 * MIB, "max_upload_bytes": 5 * 1024 * GIB}


def rejected(call, *args, **kwargs) -> str:
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    return caught.value.message


@pytest.mark.parametrize(
    ("size", "part_size", "part_count"),
    [
        (1, 8 * MIB, 1),
        (8 * MIB, 8 * MIB, 1),
        (8 * MIB + 1, 8 * MIB, 2),
        (25 * MIB, 8 * MIB, 4),
        (8 * MIB * 10_000, 8 * MIB, 10_000),
        (8 * MIB * 10_000 + 1, 8 * MIB + 1, 10_000),
        (100 * GIB, math.ceil(100 * GIB / 10_000), 10_000),
        (5 * 1024 * GIB, math.ceil(5 * 1024 * GIB / 10_000), 10_000),
    ],
)
def test_part_size_is_the_minimum_or_a_ten_thousandth(size, part_size, part_count):
    plan = plan_parts(size, **PLAN)
    assert (plan.part_size, plan.part_count) == (part_size, part_count)
    assert part_count <= S3_MAX_PARTS
    assert (part_count - 1) * part_size < size <= part_count * part_size


def test_sizes_above_the_maximum_are_refused():
    assert "above the maximum upload of 1000" in rejected(
        plan_parts, 1001, min_part_bytes=8 * MIB, max_upload_bytes=1000
    )


def test_sizes_that_need_more_than_10000_parts_are_refused():
    too_big = S3_MAX_PART_BYTES * S3_MAX_PARTS + 1
    message = rejected(
        plan_parts, too_big, min_part_bytes=8 * MIB, max_upload_bytes=too_big
    )
    assert "more than 10000 parts" in message


@pytest.mark.parametrize("value", [0, 10_001, -1, 1.5, "3", True, None, [1]])
def test_part_numbers_are_integers_from_1_to_10000(value):
    assert rejected(part_number, value, part_count=None).startswith("partNumber")


def test_part_numbers_stop_at_the_uploads_part_count():
    assert part_number(4, part_count=4) == 4
    assert "part count of 4" in rejected(part_number, 5, part_count=4)


def test_a_sign_call_takes_at_most_a_page_of_distinct_part_numbers():
    page = list(range(1, MAX_PARTS_PER_CALL + 1))
    assert part_numbers(page, part_count=None) == page
    assert MAX_PARTS_PER_CALL <= 1000
    for too_many in (MAX_PARTS_PER_CALL + 1, 1001):
        assert "at most" in rejected(
            part_numbers, list(range(1, too_many + 1)), part_count=None
        )
    assert "more than once" in rejected(part_numbers, [3, 1, 3], part_count=None)
    assert rejected(part_numbers, [], part_count=None).startswith("partNumbers")
    assert rejected(part_numbers, "1,2", part_count=None).startswith("partNumbers")


@pytest.mark.parametrize("text", ["", "1,,2", "1,x", "0", "1.0", "10001", "1, -2"])
def test_comma_separated_part_numbers_name_the_field(text):
    assert rejected(comma_part_numbers, text, part_count=None).startswith("partNumbers")


def test_comma_separated_part_numbers_parse():
    assert comma_part_numbers(" 3,1 ,2", part_count=3) == [3, 1, 2]


def test_completed_parts_keep_only_number_and_etag():
    parts = [
        {"PartNumber": 1, "ETag": '"a"', "Size": 5},
        {"PartNumber": 3, "ETag": '"c"'},
    ]
    assert completed_parts(parts, part_count=None) == [
        {"PartNumber": 1, "ETag": '"a"'},
        {"PartNumber": 3, "ETag": '"c"'},
    ]


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([{"PartNumber": 2, "ETag": "b"}, {"PartNumber": 1, "ETag": "a"}], "follows"),
        (
            [{"PartNumber": 1, "ETag": "a"}, {"PartNumber": 1, "ETag": "a"}],
            "duplicates",
        ),
        ([{"PartNumber": 1}], "parts[0].ETag"),
        ([{"PartNumber": 1, "ETag": ""}], "parts[0].ETag"),
        ([{"PartNumber": 0, "ETag": "a"}], "parts[0].PartNumber"),
        ([{"PartNumber": "1", "ETag": "a"}], "parts[0].PartNumber"),
        (["1"], "parts[0] must be an object"),
        ([], "parts must be a non-empty list"),
        ({"PartNumber": 1}, "parts must be a non-empty list"),
    ],
)
def test_completed_parts_are_unique_ascending_and_well_formed(parts, message):
    assert message in rejected(completed_parts, parts, part_count=None)


def test_completed_parts_stop_at_the_part_count():
    parts = [{"PartNumber": 1, "ETag": "a"}, {"PartNumber": 3, "ETag": "c"}]
    assert "parts[1].PartNumber 3 is above" in rejected(
        completed_parts, parts, part_count=2
    )


@pytest.mark.parametrize(
    ("value", "allowed", "expected"),
    [
        ("video/mp4", ("video/*",), "video/mp4"),
        ("Video/MP4; codecs=avc1", ("video/*",), "video/mp4"),
        ("video/quicktime", ("video/mp4", "video/quicktime"), "video/quicktime"),
        ("audio/mpeg", ("video/*", "audio/mpeg"), "audio/mpeg"),
    ],
)
def test_allowed_content_types(value, allowed, expected):
    assert content_type(value, allowed) == expected


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("image/png", ("video/*",)),
        ("video/webm", ("video/mp4",)),
        ("videos/mp4", ("video/*",)),
        ("video", ("video/*",)),
        ("video/mp4 x", ("video/*",)),
        ("", ("video/*",)),
        (None, ("video/*",)),
        (7, ("video/*",)),
    ],
)
def test_refused_content_types_name_the_field(value, allowed):
    assert rejected(content_type, value, allowed).startswith("type")


def test_a_file_name_suggests_a_content_type():
    assert guess_content_type("abc-holiday.mp4") == "video/mp4"
    assert guess_content_type("no-extension") is None


@pytest.mark.parametrize(
    ("method", "upload_id", "part", "operation"),
    [
        ("PUT", False, False, S3Operation.PUT_OBJECT),
        ("post", False, False, S3Operation.CREATE_MULTIPART_UPLOAD),
        ("PUT", True, True, S3Operation.UPLOAD_PART),
        ("GET", True, False, S3Operation.LIST_PARTS),
        ("POST", True, False, S3Operation.COMPLETE_MULTIPART_UPLOAD),
        ("DELETE", True, False, S3Operation.ABORT_MULTIPART_UPLOAD),
    ],
)
def test_uppy_requests_map_to_s3_operations(method, upload_id, part, operation):
    assert s3_operation(method, upload_id=upload_id, part_number=part) is operation


@pytest.mark.parametrize(
    ("method", "upload_id", "part"),
    [
        ("DELETE", False, False),
        ("GET", False, False),
        ("HEAD", False, False),
        ("PUT", True, False),
        ("POST", False, True),
        (None, False, False),
        (3, False, False),
    ],
)
def test_other_requests_are_refused_naming_the_method(method, upload_id, part):
    assert rejected(
        s3_operation, method, upload_id=upload_id, part_number=part
    ).startswith("method")


BASE_ENV = {
    Env.TABLE_NAME: "videos",
    Env.SOURCE_BUCKET: "source",
    Env.MAX_UPLOAD_BYTES: str(100 * GIB),
}


def test_upload_settings_defaults():
    settings = UploadApiSettings.from_env(BASE_ENV)
    assert settings.min_part_bytes == 8 * MIB
    assert settings.allowed_content_types == ("video/*",)
    assert settings.presign_expires_seconds == 3600
    assert settings.upload_ttl_seconds == 4 * 24 * 3600


def test_upload_settings_read_the_allowlist_as_a_comma_list():
    env = {**BASE_ENV, Env.ALLOWED_CONTENT_TYPES: " video/mp4, audio/*,"}
    assert UploadApiSettings.from_env(env).allowed_content_types == (
        "video/mp4",
        "audio/*",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (Env.MIN_PART_BYTES, str(5 * MIB - 1)),
        (Env.PRESIGN_EXPIRES_SECONDS, "0"),
        (Env.PRESIGN_EXPIRES_SECONDS, "604801"),
        (Env.MAX_UPLOAD_BYTES, "0"),
        (Env.UPLOAD_TTL_SECONDS, "soon"),
    ],
)
def test_upload_settings_refuse_values_s3_would_refuse(name, value):
    with pytest.raises(MissingSetting, match=name):
        UploadApiSettings.from_env({**BASE_ENV, name: value})
