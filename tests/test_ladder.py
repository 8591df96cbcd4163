"""Ladder planning as pure functions of a described source."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest

from vod.ladder import (
    DEFAULT_LADDER,
    Rung,
    Source,
    output_frame_rate,
    parse_ladder,
    plan_ladder,
)


def source(width: int, height: int, **overrides) -> Source:
    values: dict[str, Any] = {
        "width": width,
        "height": height,
        "duration": 10.0,
        "frame_rate": Fraction(30),
        "average_frame_rate": Fraction(30),
        "has_audio": True,
    }
    values.update(overrides)
    return Source(**values)


def sizes(plan) -> list[tuple[str, int, int]]:
    return [(v.name, v.width, v.height) for v in plan.variants]


def test_landscape_1080p_gets_all_five_rungs_with_their_caps():
    plan = plan_ladder(source(1920, 1080))
    assert sizes(plan) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("540p", 960, 540),
        ("432p", 768, 432),
        ("360p", 640, 360),
    ]
    assert [v.max_bitrate for v in plan.variants] == [
        5_000_000,
        3_000_000,
        2_000_000,
        1_200_000,
        800_000,
    ]
    assert plan.variants[0].buffer_size == 10_000_000


def test_portrait_rungs_are_chosen_by_the_short_side():
    assert sizes(plan_ladder(source(1080, 1920))) == [
        ("1080p", 1080, 1920),
        ("720p", 720, 1280),
        ("540p", 540, 960),
        ("432p", 432, 768),
        ("360p", 360, 640),
    ]


def test_720p_source_is_never_upscaled():
    plan = plan_ladder(source(1280, 720))
    assert [v.name for v in plan.variants] == ["720p", "540p", "432p", "360p"]
    assert max(v.height for v in plan.variants) == 720


def test_source_below_every_rung_gets_one_rung_at_its_own_size():
    plan = plan_ladder(source(426, 240))
    assert sizes(plan) == [("240p", 426, 240)]
    assert plan.variants[0].max_bitrate == 800_000


def test_odd_dimensions_scale_from_the_aspect_ratio_to_even_sizes():
    assert sizes(plan_ladder(source(853, 479))) == [
        ("432p", 770, 432),
        ("360p", 642, 360),
    ]
    assert sizes(plan_ladder(source(425, 239))) == [("238p", 424, 238)]


@pytest.mark.parametrize("rotation", [90, -90, 270])
def test_quarter_turn_rotation_swaps_to_display_orientation(rotation):
    plan = plan_ladder(source(1920, 1080, rotation=rotation))
    assert sizes(plan)[0] == ("1080p", 1080, 1920)


def test_half_turn_keeps_orientation():
    assert sizes(plan_ladder(source(1280, 720, rotation=180)))[0] == ("720p", 1280, 720)


def test_non_square_pixels_are_planned_at_their_display_aspect():
    pal_widescreen = source(720, 576, sample_aspect_ratio=Fraction(64, 45))
    assert pal_widescreen.display_size == (1024, 576)
    assert sizes(plan_ladder(pal_widescreen))[0] == ("540p", 960, 540)


def test_audio_presence_is_carried_into_the_plan():
    assert plan_ladder(source(640, 360, has_audio=False)).has_audio is False
    assert plan_ladder(source(640, 360)).has_audio is True


def test_bitrates_are_capped_at_the_source_bitrate_and_equal_steps_dropped():
    plan = plan_ladder(source(1920, 1080, bitrate=1_500_000))
    # 1500 for 1080p, 720p and 540p is no step above 432p's 1200 (1.25x).
    assert [(v.name, v.max_bitrate) for v in plan.variants] == [
        ("432p", 1_200_000),
        ("360p", 800_000),
    ]


def test_a_303_kbit_source_keeps_only_the_lowest_rung():
    plan = plan_ladder(source(1920, 1080, bitrate=303_000))
    assert [(v.name, v.max_bitrate) for v in plan.variants] == [("360p", 303_000)]


def test_a_high_bitrate_1080p_source_keeps_all_five_rungs():
    plan = plan_ladder(source(1920, 1080, bitrate=20_000_000))
    assert [v.max_bitrate for v in plan.variants] == [
        5_000_000,
        3_000_000,
        2_000_000,
        1_200_000,
        800_000,
    ]


def test_a_rung_exactly_one_step_above_the_one_below_is_kept():
    ladder = (Rung("b", 480, 1500), Rung("a", 360, 1000), Rung("c", 240, 700))
    plan = plan_ladder(source(1920, 1080), ladder)
    # 1000 is only 1.43x 700: dropped; 1500 is 2.14x 700: kept.
    assert [v.name for v in plan.variants] == ["b", "c"]
    assert [v.name for v in plan_ladder(source(1920, 1080), ladder[:2]).variants] == [
        "b",
        "a",
    ]


@pytest.mark.parametrize(
    ("declared", "average", "expected"),
    [
        (Fraction(30), Fraction(30), Fraction(30)),
        (Fraction(30000, 1001), Fraction(30000, 1001), Fraction(30000, 1001)),
        (Fraction(120), Fraction(120), Fraction(60)),
        (Fraction(240), Fraction(240), Fraction(60)),
        (Fraction(120000, 1001), Fraction(120000, 1001), Fraction(60000, 1001)),
        (Fraction(50), Fraction(50), Fraction(50)),
        # Variable rate: the average, snapped to the nearest broadcast rate...
        (Fraction(90000), Fraction(2997, 100), Fraction(30000, 1001)),
        (Fraction(600), Fraction(2999, 100), Fraction(30)),
        # ...or rounded when no broadcast rate is near.
        (Fraction(90000), Fraction(273, 10), Fraction(27)),
        (Fraction(0), Fraction(0), Fraction(30)),
    ],
)
def test_output_frame_rate(declared, average, expected):
    assert output_frame_rate(declared, average) == expected


def test_gop_is_two_seconds_of_output_frames():
    assert plan_ladder(source(640, 360)).gop_frames == 60
    film = Fraction(24000, 1001)
    ntsc_film = source(640, 360, frame_rate=film, average_frame_rate=film)
    assert plan_ladder(ntsc_film).gop_frames == 48
    high_rate = source(
        640, 360, frame_rate=Fraction(120), average_frame_rate=Fraction(120)
    )
    assert plan_ladder(high_rate).gop_frames == 120


def test_parse_ladder_sorts_largest_first():
    raw = json.dumps(
        [
            {"name": "sd", "shortSide": 480, "maxKbps": 1500},
            {"name": "hd", "shortSide": 720, "maxKbps": 3000},
        ]
    )
    assert parse_ladder(raw) == (Rung("hd", 720, 3000), Rung("sd", 480, 1500))


def test_default_ladder_round_trips_through_its_json_shape():
    raw = json.dumps(
        [
            {"name": r.name, "shortSide": r.short_side, "maxKbps": r.max_kbps}
            for r in DEFAULT_LADDER
        ]
    )
    assert parse_ladder(raw) == DEFAULT_LADDER


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "non-empty list"),
        ('[{"name": "a", "shortSide": 360}]', "bad ladder entry"),
        ('[{"name": "a", "shortSide": 361, "maxKbps": 800}]', "positive even"),
        ('[{"name": "a", "shortSide": 360, "maxKbps": true}]', "maxKbps"),
        ('[{"name": "a/b", "shortSide": 360, "maxKbps": 800}]', "bad rung name"),
        ('[{"name": "audio", "shortSide": 360, "maxKbps": 800}]', "bad rung name"),
        ('[{"name": "audio2", "shortSide": 360, "maxKbps": 800}]', "bad rung name"),
        (
            '[{"name": "a", "shortSide": 360, "maxKbps": 800},'
            ' {"name": "a", "shortSide": 240, "maxKbps": 400}]',
            "unique",
        ),
    ],
)
def test_parse_ladder_rejects_bad_values_with_the_reason(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_ladder(raw)
