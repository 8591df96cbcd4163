"""Sprite geometry on the keyframes, its WebVTT index, the poster's keyframe,
and thumbnails taken from an encoded rung's keyframes."""

from __future__ import annotations

from fractions import Fraction

from tests.test_worker_encode import encode_real
from tests.worker_support import clip, probe_json
from worker.renditions import collect
from worker.thumbnails import (
    MAX_THUMBNAILS,
    extract_keyframes,
    join_rendition,
    plan_sprite,
    poster_keyframe,
    tile,
    webvtt,
)

NTSC = Fraction(30000, 1001)


def sheet(seconds, width=1280, height=720, *, rate=Fraction(30)):
    return plan_sprite(
        seconds, width, height, gop_frames=round(rate * 2), frame_rate=rate
    )


def test_landscape_sprite_tiles_are_160_wide_one_per_keyframe():
    sprite = sheet(65.0, 1920, 1080)
    assert (sprite.step, sprite.count) == (1, 33)
    assert (sprite.tile_width, sprite.tile_height) == (160, 90)
    assert (sprite.columns, sprite.rows) == (10, 4)
    assert (sprite.width, sprite.height) == (1600, 360)


def test_portrait_sprite_tiles_are_160_tall():
    sprite = sheet(4.0, 1080, 1920)
    assert (sprite.tile_width, sprite.tile_height) == (90, 160)
    assert (sprite.count, sprite.columns, sprite.rows) == (2, 2, 1)


def test_long_videos_skip_keyframes_to_stay_on_one_sheet():
    sprite = sheet(2 * 3600.0)
    assert sprite.step == 36
    assert sprite.count <= MAX_THUMBNAILS
    assert sprite.rows <= 10
    assert sprite.start(1) == 72.0


def test_a_chunk_takes_the_thumbnails_among_its_keyframes():
    sprite = sheet(600.0)
    assert sprite.step == 3
    # Keyframes 30 to 59 (a 60 s chunk from 60 s) hold thumbnails 10 to 19.
    assert sprite.keyframes(30, 30) == list(range(10, 20))
    assert sprite.keyframes(31, 2) == []
    assert sprite.keyframes(299, 5) == []


def test_webvtt_cues_follow_the_keyframes_and_point_into_the_grid():
    sprite = sheet(25.0)
    vtt = webvtt(sprite, 25.0)
    blocks = vtt.strip().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = [block.splitlines() for block in blocks[1:]]
    assert len(cues) == sprite.count == 13
    assert cues[0] == ["00:00:00.000 --> 00:00:02.000", "sprite.jpg#xywh=0,0,160,90"]
    assert cues[10] == ["00:00:20.000 --> 00:00:22.000", "sprite.jpg#xywh=0,90,160,90"]
    assert cues[-1] == [
        "00:00:24.000 --> 00:00:25.000",
        "sprite.jpg#xywh=320,90,160,90",
    ]
    ntsc = webvtt(sheet(10.0, rate=NTSC), 10.0)
    assert "00:00:02.002 --> 00:00:04.004" in ntsc


def test_webvtt_timestamps_carry_hours():
    assert "01:02:" in webvtt(sheet(3725.0), 3725.0)


def test_the_poster_is_the_keyframe_a_quarter_in_capped_and_the_first_for_tiny_clips():
    two = Fraction(2)
    assert poster_keyframe(8.0, two) == 1
    assert poster_keyframe(600.0, two) == 5
    assert poster_keyframe(0.4, two) == 0


def test_thumbnails_come_from_a_rungs_keyframes_and_tile_into_the_sprite(tmp_path):
    out = tmp_path / "out"
    encoded = encode_real(clip(seconds=6.5, audio=False), out)
    rung = collect(out, encoded.variants[-1].name, video=True)
    joined = join_rendition(
        rung.folder / rung.init, rung.paths(), tmp_path / "rung.mp4"
    )
    sprite = sheet(6.5, 640, 360)
    frames = extract_keyframes(
        joined, [0, 2, 3], tmp_path / "thumbs", width=160, height=90
    )
    assert len(frames) == 3
    size = ("-show_entries", "stream=width,height")
    assert probe_json(frames[0], *size)["streams"][0] == {"width": 160, "height": 90}
    made = tile(
        extract_keyframes(joined, [0, 1, 2, 3], tmp_path / "all", width=160, height=90),
        sprite,
        tmp_path / "sprite.jpg",
    )
    assert sprite.count == 4
    assert probe_json(made, *size)["streams"][0] == {"width": 640, "height": 90}
