"""The worker loop end to end against moto and real ffmpeg, in process, on
the one-run path (a source no longer than one chunk): one message in, a
READY (or FAILED) record and a complete HLS folder out."""

from __future__ import annotations

import itertools
import re
import time

import boto3
import pytest
from botocore.config import Config

from tests.worker_support import AgentStub, Stack, clip, probe_json, resource
from vod.model import Status
from vod.repository import VideoRepository
from worker.hls import MediaPlaylist
from worker.protection import TaskProtection
from worker.storage import IMMUTABLE_CACHE, PLAYLIST_CACHE

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


class ProgressRecorder(VideoRepository):
    """The real table adapter, noting when each progress credit was written
    and the progress the record showed after it."""

    def __init__(self, table_name, *, dynamodb):
        super().__init__(table_name, dynamodb=dynamodb)
        self.credits = []

    def apply(self, video_id, update):
        result = super().apply(video_id, update)
        arguments = update.arguments()
        if result.video is not None and "ADD" in arguments["UpdateExpression"]:
            self.credits.append((time.monotonic(), result.video.percent))
        return result


@pytest.fixture
def stack(moto):
    return Stack(moto)


def stream_infs(master):
    lines = master.splitlines()
    return {
        lines[i + 1]: dict(_ATTRIBUTE.findall(line.split(":", 1)[1]))
        for i, line in enumerate(lines)
        if line.startswith("#EXT-X-STREAM-INF:")
    }


def rung_file(stack, video_id, name, tmp_path):
    """The rung's init and media segments, downloaded and joined."""
    playlist = MediaPlaylist.parse(
        stack.read_output(video_id, f"{name}/index.m3u8").decode()
    )
    parts = [playlist.init] + [uri for uri, _ in playlist.segments]
    joined = tmp_path / f"{name}.mp4"
    joined.write_bytes(
        b"".join(stack.read_output(video_id, f"{name}/{p}") for p in parts)
    )
    return joined


def keyframe_times(path):
    frames = probe_json(
        path,
        "-select_streams",
        "v",
        "-skip_frame",
        "nokey",
        "-show_entries",
        "frame=pts_time",
    )["frames"]
    return [round(float(f["pts_time"]), 3) for f in frames]


def test_a_job_ends_ready_with_a_complete_hls_folder(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=6.5))
    with AgentStub() as agent:
        worker = stack.worker(tmp_path / "work", protection=TaskProtection(agent.uri))
        assert worker.poll_once(wait_seconds=0)

    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    assert video.percent == 100
    assert video.error is None
    assert video.duration == pytest.approx(6.5, abs=0.05)
    assert (video.width, video.height) == (640, 360)
    prefix = f"videos/{video_id}/"
    assert video.playback == prefix + "master.m3u8"
    assert (video.poster, video.sprite, video.thumbnails) == (
        prefix + "poster.jpg",
        prefix + "sprite.jpg",
        prefix + "thumbnails.vtt",
    )
    assert [(r.name, r.width, r.height, r.bitrate) for r in video.renditions] == [
        ("360p", 640, 360, 800_000),
        ("240p", 426, 240, 400_000),
        ("144p", 256, 144, 200_000),
    ]
    assert all(r.playlist == f"{prefix}{r.name}/index.m3u8" for r in video.renditions)
    assert all(r.frame_rate == 30.0 for r in video.renditions)
    assert video.cost["wallSeconds"] > 0
    assert video.cost["cpuSeconds"] > 0
    assert video.cost["usd"] > 0
    assert video.to_public()["cost"] == video.cost

    master = stack.read_output(video_id, "master.m3u8").decode()
    assert master.startswith("#EXTM3U")
    assert re.search(
        r'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio".*URI="audio/index.m3u8"',
        master,
    )
    variants = stream_infs(master)
    assert list(variants) == [f"{r.name}/index.m3u8" for r in video.renditions]
    for rendition in video.renditions:
        attributes = variants[f"{rendition.name}/index.m3u8"]
        assert attributes["RESOLUTION"] == f"{rendition.width}x{rendition.height}"
        assert attributes["FRAME-RATE"] == "30.000"
        assert attributes["CODECS"] == f'"{rendition.codecs}"'
        assert re.fullmatch(r"avc1\.[0-9a-f]{6},mp4a\.40\.2", rendition.codecs)
        assert 0 < int(attributes["AVERAGE-BANDWIDTH"]) <= int(attributes["BANDWIDTH"])
        # The measured rates (plus the audio's) are the master's.
        assert rendition.average_bitrate < int(attributes["AVERAGE-BANDWIDTH"])
        assert rendition.peak_bitrate < int(attributes["BANDWIDTH"])
        assert 35 < rendition.psnr < 60
        assert attributes["AUDIO"] == '"group_audio"'

    outputs = stack.outputs(video_id)
    expected = {"master.m3u8", "poster.jpg", "sprite.jpg", "thumbnails.vtt"}
    for folder in ["audio", *(r.name for r in video.renditions)]:
        text = stack.read_output(video_id, f"{folder}/index.m3u8").decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        playlist = MediaPlaylist.parse(text)
        assert re.fullmatch(r"init-[0-9a-f]{12}\.mp4", playlist.init or "")
        expected |= {f"{folder}/index.m3u8", f"{folder}/{playlist.init}"}
        if folder != "audio":
            expected.add(f"{folder}/iframes.m3u8")
        expected |= {f"{folder}/{uri}" for uri, _ in playlist.segments}
        assert [uri for uri, _ in playlist.segments] == [
            "seg_00000.m4s",
            "seg_00001.m4s",
        ]
    assert set(outputs) == expected
    for name, head in outputs.items():
        if name.endswith(".m3u8"):
            assert (head["ContentType"], head["CacheControl"]) == (
                "application/vnd.apple.mpegurl",
                PLAYLIST_CACHE,
            )
        elif name.endswith((".m4s", ".mp4")):
            assert (head["ContentType"], head["CacheControl"]) == (
                "video/mp4",
                IMMUTABLE_CACHE,
            )
    assert outputs["poster.jpg"]["ContentType"] == "image/jpeg"
    assert outputs["sprite.jpg"]["ContentType"] == "image/jpeg"
    assert outputs["thumbnails.vtt"]["ContentType"] == "text/vtt"

    keyframes = {}
    for rendition in video.renditions:
        joined = rung_file(stack, video_id, rendition.name, tmp_path)
        stream = probe_json(joined, "-show_streams")["streams"][0]
        assert (stream["width"], stream["height"]) == (
            rendition.width,
            rendition.height,
        )
        keyframes[rendition.name] = keyframe_times(joined)
    first = keyframes["360p"]
    assert len(first) == 4
    assert [round(b - a, 3) for a, b in itertools.pairwise(first)] == [2.0] * 3
    assert all(times == first for times in keyframes.values())

    poster = tmp_path / "poster.jpg"
    poster.write_bytes(stack.read_output(video_id, "poster.jpg"))
    sprite = tmp_path / "sprite.jpg"
    sprite.write_bytes(stack.read_output(video_id, "sprite.jpg"))
    size = ("-show_entries", "stream=width,height")
    assert probe_json(poster, *size)["streams"][0] == {"width": 640, "height": 360}
    assert probe_json(sprite, *size)["streams"][0] == {"width": 640, "height": 90}
    vtt = stack.read_output(video_id, "thumbnails.vtt").decode()
    assert vtt.count("sprite.jpg#xywh=") == 4
    assert "00:00:06.000 --> 00:00:06.500" in vtt

    assert agent.states() == [True, False]
    assert stack.queue_depths() == (0, 0)
    assert (
        list(
            stack.s3.list_objects_v2(
                Bucket=stack.output_bucket, Prefix=f"{prefix}thumbs/"
            ).get("Contents", [])
        )
        == []
    )


def test_progress_moves_from_the_start_of_an_encode_with_poster_and_sprite(
    stack, tmp_path
):
    """ffmpeg reports no progress until every output of its run has started;
    the poster and sprite are not outputs of the encode, so the first credit
    comes early and progress only grows."""
    video_id = stack.queue_video(clip(size="1280x720", seconds=8))
    recorder = ProgressRecorder(stack.table, dynamodb=resource(stack.moto, "dynamodb"))
    worker = stack.worker(tmp_path / "work", repository=recorder)
    started = time.monotonic()
    assert worker.poll_once(wait_seconds=0)
    finished = time.monotonic()

    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    assert video.sprite
    assert video.poster
    assert len(recorder.credits) >= 3
    first_credit = recorder.credits[0][0]
    assert first_credit - started < (finished - started) / 2
    percents = [percent for _, percent in recorder.credits]
    assert percents == sorted(percents)
    assert percents[0] < 50 <= percents[-1] < 100
    assert video.encoded == pytest.approx(8.0, abs=0.1)


def test_a_source_without_audio_gets_video_only_variants(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=2, audio=False))
    assert stack.worker(tmp_path / "work").poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    master = stack.read_output(video_id, "master.m3u8").decode()
    assert "#EXT-X-MEDIA" not in master
    for attributes in stream_infs(master).values():
        assert "mp4a" not in attributes["CODECS"]
        assert "AUDIO" not in attributes
    assert not any(name.startswith("audio/") for name in stack.outputs(video_id))


def truncated(faststart):
    whole = clip(seconds=4, faststart=faststart).read_bytes()
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"just some text, not a video\n", "not a video that can be read"),
        (b"", "the uploaded file is empty"),
        ("index-up-front", "truncated or corrupt: only"),
        ("index-at-end", "not a video that can be read"),
    ],
)
def test_bad_inputs_end_failed_and_leave_no_message(stack, tmp_path, content, reason):
    if content == "index-up-front":
        content = truncated(faststart=True)
    elif content == "index-at-end":
        content = truncated(faststart=False)
    upload = tmp_path / "upload.mp4"
    upload.write_bytes(content)
    video_id = stack.queue_video(upload)
    assert stack.worker(tmp_path / "work").poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert reason in video.error
    assert str(tmp_path) not in video.error
    assert "http" not in video.error, "no presigned URL leaks into the reason"
    assert stack.queue_depths() == (0, 0)
    assert stack.outputs(video_id) == {}


def test_not_enough_disk_space_ends_failed(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=1))
    worker = stack.worker(tmp_path / "work", disk_headroom_bytes=10**18)
    assert worker.poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert "not enough disk space" in video.error
    assert stack.queue_depths() == (0, 0)


def test_a_redelivered_job_for_a_ready_video_is_acknowledged_without_work(
    stack, tmp_path
):
    video_id = stack.queue_video(clip(seconds=1), status=Status.READY)
    before = stack.repository.get(video_id)
    assert stack.worker(tmp_path / "work").poll_once(wait_seconds=0)
    assert stack.repository.get(video_id) == before
    assert stack.outputs(video_id) == {}
    assert stack.queue_depths() == (0, 0)


def test_a_job_for_a_video_not_yet_queued_is_left_for_later(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=1), status=Status.UPLOADED)
    assert stack.worker(tmp_path / "work").poll_once(wait_seconds=0)
    assert stack.repository.get(video_id).status == Status.UPLOADED
    assert stack.queue_depths() == (1, 0)


def test_a_malformed_message_is_left_for_the_dlq(stack, tmp_path):
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"videoId": 3}')
    assert stack.worker(tmp_path / "work").poll_once(wait_seconds=0)
    assert stack.queue_depths() == (1, 0)


def unreachable_s3():
    return boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def test_an_s3_outage_leaves_the_message_and_never_marks_ready(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=1))
    worker = stack.worker(tmp_path / "work", s3=unreachable_s3())
    assert worker.poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.PROCESSING
    assert video.playback is None
    assert stack.queue_depths() == (1, 0)


def test_the_last_delivery_of_a_failing_job_fails_the_record_with_why(stack, tmp_path):
    video_id = stack.queue_video(clip(seconds=1))
    worker = stack.worker(tmp_path / "work", s3=unreachable_s3(), max_receive_count=1)
    assert worker.poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert video.error.startswith("transcoding failed 1 times; last error:")
    assert stack.queue_depths() == (1, 0), "the job itself still goes to the DLQ"
