"""The video model: the status machine and the record's round trip."""

from __future__ import annotations

import itertools

import pytest

from vod.keys import owner_segment, parse_upload_key, sanitize_filename, upload_key
from vod.model import (
    TERMINAL,
    TRANSITIONS,
    AudioTrack,
    Rendition,
    Status,
    TransitionError,
    Video,
    check_transition,
    sources_of,
)


def test_happy_path_through_the_pipeline_is_allowed():
    path = [
        Status.UPLOADING,
        Status.UPLOADED,
        Status.QUEUED,
        Status.PROCESSING,
        Status.PROCESSING,
        Status.READY,
    ]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


def test_an_upload_completed_straight_against_s3_may_skip_uploaded():
    check_transition(Status.UPLOADING, Status.QUEUED)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.READY, Status.PROCESSING),
        (Status.READY, Status.QUEUED),
        (Status.FAILED, Status.READY),
        (Status.ABORTED, Status.UPLOADED),
        (Status.UPLOADED, Status.UPLOADING),
        (Status.UPLOADED, Status.ABORTED),
        (Status.QUEUED, Status.UPLOADED),
    ],
)
def test_forbidden_moves_raise_with_what_is_allowed(current, target):
    with pytest.raises(TransitionError, match=f"{current} cannot move to {target}"):
        check_transition(current, target)


def test_terminal_statuses_and_failure_reachability():
    assert frozenset({Status.READY, Status.FAILED, Status.ABORTED}) == TERMINAL
    for status in set(Status) - TERMINAL:
        assert Status.FAILED in TRANSITIONS[status], f"{status} must be able to fail"


def test_sources_of_inverts_the_transition_table():
    assert sources_of(Status.QUEUED) == {Status.UPLOADING, Status.UPLOADED}
    assert sources_of(Status.ABORTED) == {Status.UPLOADING}
    assert sources_of(Status.PROCESSING) == {Status.QUEUED, Status.PROCESSING}


def test_record_round_trips_through_a_dynamodb_item():
    video = Video.new_upload(
        video_id="v1",
        owner="user-1",
        key="uploads/user-1/v1/clip.mp4",
        filename="clip.mp4",
        content_type="video/mp4",
        size=123,
        upload_id="up-1",
        expires_at=1_900_000_000,
    )
    ready = Video.from_item(
        {
            **video.to_item(),
            "status": "READY",
            "duration": 12.5,
            "renditions": [
                Rendition("720p", 1280, 720, 3_000_000, "720p/index.m3u8").to_dict()
            ],
        }
    )
    assert ready.status is Status.READY
    assert ready.duration == 12.5
    assert ready.renditions[0].height == 720
    tracks = Video.from_item(
        {
            **ready.to_item(),
            "audio_tracks": [
                AudioTrack(
                    "en",
                    "English",
                    "videos/v1/audio/index.m3u8",
                    source_loudness={"integrated": -27.25, "truePeak": -8.5},
                    loudness={"integrated": -16.0, "truePeak": -1.5},
                    normalized=True,
                ).to_dict(),
                AudioTrack(
                    "fr",
                    "Français",
                    "videos/v1/audio2/index.m3u8",
                    source_loudness={"integrated": None, "truePeak": None},
                    loudness={"integrated": None, "truePeak": None},
                ).to_dict(),
            ],
        }
    )
    stored = Video.from_item(tracks.to_item())
    assert stored.to_public() == tracks.to_public()
    english, french = tracks.to_public()["audioTracks"]
    assert english == {
        "language": "en",
        "name": "English",
        "default": True,
        "normalized": True,
        "sourceLoudness": {"integrated": -27.25, "truePeak": -8.5},
        "loudness": {"integrated": -16.0, "truePeak": -1.5},
    }
    # Silence has no loudness: DynamoDB drops the Nones, the API says null.
    assert french["default"] is False
    assert french["loudness"] == {"integrated": None, "truePeak": None}
    assert Video.from_item(video.to_item()) == video
    assert "error" not in video.to_item(), "absent values are not stored"


def test_a_renditions_measured_rates_and_score_round_trip_and_are_public():
    measured = Rendition(
        "720p",
        1280,
        720,
        3_000_000,
        "720p/index.m3u8",
        average_bitrate=2_100_000,
        peak_bitrate=2_900_000,
        psnr=41.37,
    )
    item = Video(
        id="v1",
        owner="u",
        status=Status.READY,
        key="k",
        filename="f.mp4",
        content_type="video/mp4",
        created_at="t",
        updated_at="t",
        renditions=(measured, Rendition("360p", 640, 360, 800_000, "360p/i.m3u8")),
    ).to_item()
    assert "psnr" not in item["renditions"][1], "absent values are not stored"
    video = Video.from_item(item)
    assert video.renditions[0] == measured
    assert video.to_public()["renditions"] == [
        {
            "name": "720p",
            "width": 1280,
            "height": 720,
            "bitrate": 3_000_000,
            "averageBitrate": 2_100_000,
            "peakBitrate": 2_900_000,
            "psnr": 41.37,
        },
        {
            "name": "360p",
            "width": 640,
            "height": 360,
            "bitrate": 800_000,
            "averageBitrate": None,
            "peakBitrate": None,
            "psnr": None,
        },
    ]


def test_public_view_builds_playback_urls_from_the_base():
    video = Video.from_item(
        {
            "id": "v1",
            "owner": "u",
            "status": "READY",
            "key": "k",
            "filename": "f.mp4",
            "content_type": "video/mp4",
            "created_at": "t",
            "updated_at": "t",
            "playback": "videos/v1/master.m3u8",
        }
    )
    public = video.to_public("https://d111111abcdef8.cloudfront.net/")
    assert public["playbackUrl"] == (
        "https://d111111abcdef8.cloudfront.net/videos/v1/master.m3u8"
    )
    assert "owner" not in public
    assert "upload_id" not in public


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My Holiday Video.MP4", "My-Holiday-Video.MP4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\clip.mov", "clip.mov"),
        ("vidéo été.mp4", "video-ete.mp4"),
        ("", "video"),
        ("....", "video"),
        ("a+b&c=d?.mp4", "a-b-c-d-.mp4"),
    ],
)
def test_filenames_are_made_safe_for_keys(name, expected):
    assert sanitize_filename(name) == expected


def test_upload_keys_are_server_made_and_parse_back():
    key = upload_key("user-1", "v1", "../evil/clip.mp4")
    assert key == "uploads/user-1/v1/clip.mp4"
    assert parse_upload_key(key) == ("user-1", "v1")
    assert parse_upload_key("uploads/user-1/clip.mp4") is None
    assert parse_upload_key("videos/v1/master.m3u8") is None


def test_an_owner_that_is_not_key_safe_becomes_a_digest():
    assert owner_segment("auth0|abc/def").startswith("u-")
    assert "/" not in owner_segment("a/b")
    assert owner_segment("3f1c-uuid") == "3f1c-uuid"
