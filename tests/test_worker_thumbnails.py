"""Sprite geometry, its WebVTT index and the poster time."""

from __future__ import annotations

import subprocess

import pytest

from worker.thumbnails import (
    MAX_THUMBNAILS,
    plan_sprite,
    poster_seconds,
    webvtt,
)


def test_landscape_sprite_tiles_are_160_wide():
    sheet = plan_sprite(65.0, 1920, 1080)
    assert (sheet.interval, sheet.count) == (2, 33)
    assert (sheet.tile_width, sheet.tile_height) == (160, 90)
    assert (sheet.columns, sheet.rows) == (10, 4)
    assert (sheet.width, sheet.height) == (1600, 360)
    assert sheet.filter() == "fps=1/2:eof_action=pass,scale=160:90,tile=10x4"


def test_portrait_sprite_tiles_are_160_tall():
    sheet = plan_sprite(4.0, 1080, 1920)
    assert (sheet.tile_width, sheet.tile_height) == (90, 160)
    assert (sheet.count, sheet.columns, sheet.rows) == (2, 2, 1)


def test_long_videos_stretch_the_interval_to_stay_on_one_sheet():
    sheet = plan_sprite(2 * 3600.0, 1280, 720)
    assert sheet.interval == 72
    assert sheet.count <= MAX_THUMBNAILS
    assert sheet.rows <= 10


@pytest.mark.parametrize("seconds", [0.5, 3, 4, 5, 7.5, 20.03])
def test_thumbnail_count_matches_what_the_fps_filter_emits(seconds):
    sheet = plan_sprite(seconds, 64, 36)
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=64x36:rate=30:duration={seconds}",
            "-vf",
            sheet.filter().split(",")[0],
            "-f",
            "null",
            "-",
            "-progress",
            "pipe:1",
            "-nostats",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    frames = [
        int(line.split("=")[1])
        for line in result.stdout.splitlines()
        if line.startswith("frame=")
    ]
    assert frames[-1] == sheet.count


def test_webvtt_cues_cover_the_duration_and_point_into_the_grid():
    sheet = plan_sprite(25.0, 1280, 720)
    vtt = webvtt(sheet, 25.0)
    blocks = vtt.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = [block.splitlines() for block in blocks[1:]]
    assert len(cues) == sheet.count == 13
    assert cues[0] == ["00:00:00.000 --> 00:00:02.000", "sprite.jpg#xywh=0,0,160,90"]
    assert cues[10] == ["00:00:20.000 --> 00:00:22.000", "sprite.jpg#xywh=0,90,160,90"]
    assert cues[-1] == [
        "00:00:24.000 --> 00:00:25.000",
        "sprite.jpg#xywh=320,90,160,90",
    ]


def test_webvtt_timestamps_carry_hours():
    sheet = plan_sprite(3725.0, 1280, 720)
    assert "01:02:05.000" in webvtt(sheet, 3725.0)


def test_poster_is_a_quarter_in_capped_and_zero_for_tiny_clips():
    assert poster_seconds(8.0) == 2.0
    assert poster_seconds(600.0) == 10.0
    assert poster_seconds(0.4) == 0.0
