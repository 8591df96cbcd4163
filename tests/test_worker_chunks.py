"""Chunked encoding end to end, in process, against moto and real ffmpeg: a
source long enough for five 6 s chunks, with two audio tracks (English and
French), encoded once in one run and once in chunks, must give the same
video and the same loudness-normalized audio renditions; the start plays
while the rest is encoded;
chunks delivered out of order, twice, or after a crash make the video READY
exactly once; a chunk that fails for good fails the video; the limits hold."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import random
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from lambdas.captions.publisher import CaptionsPublisher
from tests.hls_conformance import Nonconformance, check_vod_with_ffprobe
from tests.test_worker_e2e import keyframe_times as keyframes
from tests.worker_support import Stack, clip, probe_json, resource
from vod.captions import MPEGTS_AT_ZERO, CaptionTrack
from vod.jobs import JobMessage
from vod.loudness import LoudnessTarget
from vod.model import Status
from vod.repository import VideoRepository
from worker import fmp4, quality
from worker.hls import MediaPlaylist
from worker.jobs import AudioSoFar
from worker.ledger import Ledger

SECONDS = 26
SIZE = "426x240"
RUNGS = ("240p", "144p")
AUDIO = ("audio", "audio2")
FRAME_SECONDS = 1 / 30


def source() -> Path:
    return clip(size=SIZE, seconds=SECONDS, languages=("eng", "fra"))


class ReadyCounter(VideoRepository):
    def __init__(self, table_name, *, dynamodb):
        super().__init__(table_name, dynamodb=dynamodb)
        self.ready_writes = 0

    def apply(self, video_id, update):
        arguments = update.arguments()
        result = super().apply(video_id, update)
        sets_ready = (
            str(Status.READY) in arguments.get("ExpressionAttributeValues", {}).values()
            and "status" in arguments["ExpressionAttributeNames"].values()
        )
        if result.video is not None and sets_ready:
            self.ready_writes += 1
        return result


@dataclasses.dataclass
class Encoded:
    stack: Stack
    single: str
    chunked: str
    folders: dict[str, Path]
    #: (record, {playlist name: text}) after each chunked job.
    snapshots: list[tuple[Any, dict[str, str]]]


def download(stack, video_id, folder):
    for name in stack.outputs(video_id):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(stack.read_output(video_id, name))
    return folder


def playlists(stack, video_id):
    texts = {}
    for name in (
        "master.m3u8",
        *(f"{a}/index.m3u8" for a in AUDIO),
        *(f"{r}/index.m3u8" for r in RUNGS),
    ):
        with contextlib.suppress(stack.s3.exceptions.NoSuchKey):
            texts[name] = stack.read_output(video_id, name).decode()
    return texts


@pytest.fixture(scope="module")
def encoded(moto, tmp_path_factory) -> Encoded:
    base = tmp_path_factory.mktemp("chunks")
    stack = Stack(moto)
    normalized = LoudnessTarget()
    snapshots = []
    with pytest.MonkeyPatch.context() as patch:
        # GOPs 0, 5 and 10 of 13: chunks 1 and 3 score a GOP past a seek.
        patch.setattr(quality, "SCORE_EVERY_GOPS", 5)
        single = stack.queue_video(source())
        one_run = stack.worker(
            base / "one-run", x264_preset="veryfast", loudness=normalized
        )
        assert one_run.poll_once(wait_seconds=0)
        chunked = stack.queue_video(source())
        worker = stack.worker(
            base / "chunks",
            x264_preset="veryfast",
            chunk_seconds=6,
            loudness=normalized,
        )
        while worker.poll_once(wait_seconds=0):
            snapshots.append((stack.repository.get(chunked), playlists(stack, chunked)))
    return Encoded(
        stack=stack,
        single=single,
        chunked=chunked,
        folders={
            "single": download(stack, single, base / "single"),
            "chunked": download(stack, chunked, base / "chunked"),
        },
        snapshots=snapshots,
    )


def count_frames(playlist: Path) -> int:
    stream = probe_json(
        playlist,
        "-count_frames",
        "-select_streams",
        "v",
        "-show_entries",
        "stream=nb_read_frames",
    )["streams"][0]
    return int(stream["nb_read_frames"])


def psnr(playlist: Path, width: int, height: int) -> float:
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-i",
            str(playlist),
            "-i",
            str(source()),
            "-lavfi",
            f"[1:v]scale={width}:{height}[ref];[0:v][ref]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(re.findall(r"average:([0-9.]+)", result.stderr)[-1])


def decode_errors(master: Path) -> str:
    """What ffmpeg says decoding every stream of ``master``: nothing, when
    the video plays through."""
    command = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(master)]
    result = subprocess.run(
        [*command, "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stderr if result.returncode == 0 else result.stderr or "failed"


def test_the_chunked_video_is_the_one_run_video(encoded):
    stack = encoded.stack
    single = stack.repository.get(encoded.single)
    chunked = stack.repository.get(encoded.chunked)
    assert single.status == chunked.status == Status.READY
    assert single.plan["mode"] == "single"
    assert chunked.plan["mode"] == "chunked"
    assert len(chunked.plan["chunks"]) == 5
    assert chunked.chunks_done == 5
    assert [r.name for r in chunked.renditions] == list(RUNGS)

    def shape(video):
        return [
            (r.name, r.width, r.height, r.bitrate, r.codecs, r.frame_rate)
            for r in video.renditions
        ]

    assert shape(chunked) == shape(single)
    scores = {}
    # The chunks' notes for the stitch are gone.
    assert not (encoded.folders["chunked"] / "iframes").exists()
    for rung in chunked.renditions:
        one = encoded.folders["single"] / rung.name / "index.m3u8"
        many = encoded.folders["chunked"] / rung.name / "index.m3u8"
        assert count_frames(many) == count_frames(one) == SECONDS * 30
        whole = psnr(many, rung.width, rung.height)
        assert whole == pytest.approx(psnr(one, rung.width, rung.height), abs=0.1)
        scores[rung.name] = whole
        durations = [
            sum(s for _, s in MediaPlaylist.parse(path.read_text()).segments)
            for path in (one, many)
        ]
        assert durations[0] == pytest.approx(durations[1], abs=FRAME_SECONDS)
        assert keyframes(many) == keyframes(one)
    # Both modes scored the same GOPs (3 of 13), as the whole video scores.
    for one, many in zip(single.renditions, chunked.renditions, strict=True):
        assert many.psnr == pytest.approx(one.psnr, abs=0.1)
        assert many.psnr == pytest.approx(scores[many.name], abs=1.0)
        assert many.average_bitrate == pytest.approx(one.average_bitrate, rel=0.05)
        assert 0 < many.average_bitrate <= many.peak_bitrate
    assert chunked.to_public()["renditions"][0]["psnr"] == chunked.renditions[0].psnr
    for folder in AUDIO:
        audio = [
            (encoded.folders[kind] / folder / "index.m3u8").read_text()
            for kind in ("single", "chunked")
        ]
        assert (
            MediaPlaylist.parse(audio[0]).segments
            == MediaPlaylist.parse(audio[1]).segments
        )


@pytest.mark.parametrize("kind", ["single", "chunked"])
def test_each_audio_track_is_a_normalized_rendition_in_its_language(encoded, kind):
    master = (encoded.folders[kind] / "master.m3u8").read_text()
    media = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA")]
    assert media == [
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="en",'
        'NAME="English",DEFAULT=YES,AUTOSELECT=YES,URI="audio/index.m3u8"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="group_audio",LANGUAGE="fr",'
        'NAME="Français",DEFAULT=NO,AUTOSELECT=YES,URI="audio2/index.m3u8"',
    ]
    video_id = encoded.single if kind == "single" else encoded.chunked
    public = encoded.stack.repository.get(video_id).to_public()
    tracks = public["audioTracks"]
    assert [(t["language"], t["name"], t["default"]) for t in tracks] == [
        ("en", "English", True),
        ("fr", "Français", False),
    ]
    for track in tracks:
        # lavfi's sine is at -21 LUFS (its peak at -18 dBFS).
        assert track["sourceLoudness"]["integrated"] == pytest.approx(-21, abs=1)
        assert track["normalized"] is True
        assert track["loudness"]["integrated"] == pytest.approx(-16, abs=1)
        assert track["loudness"]["truePeak"] <= -1 + 0.5


def test_segments_run_on_without_gaps_duplicates_or_discontinuities(encoded):
    folder = encoded.folders["chunked"]
    keyframe_times = []
    for rung in RUNGS:
        text = (folder / rung / "index.m3u8").read_text()
        assert "#EXT-X-DISCONTINUITY" not in text
        assert text.count("#EXT-X-MAP:") == 1
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert "#EXT-X-ENDLIST" in text
        playlist = MediaPlaylist.parse(text)
        names = [uri for uri, _ in playlist.segments]
        assert names == [f"seg_{n:05d}.m4s" for n in range(len(names))]
        init = (folder / rung / playlist.init).read_bytes()
        timescale = fmp4.timescale(init)
        expected = 0
        for uri, seconds in playlist.segments:
            data = (folder / rung / uri).read_bytes()
            decode_times = [
                int.from_bytes(data[b.payload + 4 : b.payload + 12], "big")
                for b in fmp4.boxes(data)
                if b.kind == b"tfdt"
            ]
            assert decode_times[0] == expected, uri
            expected += round(seconds * timescale)
        keyframe_times.append(keyframes(folder / rung / "index.m3u8"))
    assert keyframe_times[0] == keyframe_times[1]
    assert len(keyframe_times[0]) == SECONDS // 2
    steps = {round(b - a, 3) for a, b in itertools.pairwise(keyframe_times[0])}
    assert steps == {2.0}


@pytest.mark.parametrize("kind", ["single", "chunked"])
def test_the_master_playlist_decodes_without_an_error(encoded, kind):
    # The one run's segments were cut into GOP fragments after ffmpeg.
    assert decode_errors(encoded.folders[kind] / "master.m3u8") == ""


def test_the_start_plays_while_the_rest_is_encoded(encoded):
    growing = [
        (record, texts)
        for record, texts in encoded.snapshots
        if record.status == Status.PROCESSING and record.playable
    ]
    assert growing, "the video was playable before it was READY"
    first_record, first_texts = growing[0]
    public = first_record.to_public("https://cdn.example.com")
    assert public["playable"] is True
    assert public["playbackUrl"] == (
        f"https://cdn.example.com/videos/{encoded.chunked}/master.m3u8"
    )
    assert public["playableUntil"] == pytest.approx(6.0)
    assert public["chunks"] == {"total": 5, "done": first_record.chunks_done}
    for rung in RUNGS:
        text = first_texts[f"{rung}/index.m3u8"]
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
        assert "#EXT-X-ENDLIST" not in text
        assert "#EXT-X-START:TIME-OFFSET=0" in text
    for folder in AUDIO:
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in first_texts[f"{folder}/index.m3u8"]
    assert "master.m3u8" in first_texts
    # Each playlist only grows, segment by segment, from the start.
    for name in (
        *(f"{a}/index.m3u8" for a in AUDIO),
        *(f"{r}/index.m3u8" for r in RUNGS),
    ):
        listed = [
            [uri for uri, _ in MediaPlaylist.parse(texts[name]).segments]
            for _, texts in encoded.snapshots
            if name in texts
        ]
        for before, after in itertools.pairwise(listed):
            assert after[: len(before)] == before
    untils = [record.playable_until for record, _ in growing]
    assert untils == sorted(untils)
    percents = [record.percent for record, _ in encoded.snapshots]
    assert percents == sorted(percents)
    assert encoded.snapshots[-1][0].status == Status.READY


def test_the_ready_record_carries_the_summed_cost_of_every_task(encoded):
    video = encoded.stack.repository.get(encoded.chunked)
    tasks = video.tasks
    assert set(tasks) == {
        "video",
        "audio",
        "stitch",
        *(f"chunk-{n:04d}" for n in range(5)),
    }
    wall = sum(float(task["wall"]) for task in tasks.values())
    assert video.cost["wallSeconds"] == pytest.approx(wall, abs=0.2)
    assert video.cost["cpuSeconds"] > 0
    assert video.cost["usd"] > 0


# --- delivery order, duplicates, crashes ---------------------------------------


@pytest.fixture
def stack(moto):
    return Stack(moto)


def plan_chunks(stack, tmp_path, path, **overrides):
    """Queue ``path``, run its video task, and take its chunk and audio jobs
    off the queue; returns the video id and those jobs."""
    video_id = stack.queue_video(path)
    worker = stack.worker(tmp_path / "planner", chunk_seconds=6, **overrides)
    assert worker.poll_once(wait_seconds=0)
    assert stack.repository.get(video_id).tasks["video"]["done"]
    jobs = [JobMessage.from_json(m["Body"]) for m in stack.receive_all()]
    stack.sqs.purge_queue(QueueUrl=stack.queue_url)
    return video_id, jobs


def run_until_empty(stack, workers, *, settle_seconds=4.0):
    """Poll with every worker in turn until the queue stays empty (a job
    that had to wait comes back once its wait is over)."""
    idle_since = None
    while True:
        busy = False
        for worker in workers:
            if worker.poll_once(wait_seconds=0):
                busy = True
        if busy:
            idle_since = None
        elif sum(stack.queue_depths()[:1]) == 0:
            return
        else:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > settle_seconds * 4:
                raise AssertionError("jobs stay in the queue but none comes back")
            time.sleep(0.2)


def test_out_of_order_duplicated_and_crashed_chunks_make_one_ready(stack, tmp_path):
    video_id, jobs = plan_chunks(stack, tmp_path, clip(size="320x180", seconds=20))
    assert [job.task for job in jobs] == [
        "chunk-0000",
        "audio",
        "chunk-0001",
        "chunk-0002",
        "chunk-0003",
    ]
    # A worker took chunk 2, wrote half a segment, and died: its lease ran out.
    dead = Ledger(stack.repository, owner="dead-worker", lease_seconds=0)
    assert dead.claim(video_id, "chunk-0002").state.value == "claimed"
    stack.s3.put_object(
        Bucket=stack.output_bucket,
        Key=f"videos/{video_id}/144p/seg_00002.m4s",
        Body=b"half a segment",
    )
    deliveries = [*jobs, jobs[3], jobs[0], jobs[4]]
    random.Random(7).shuffle(deliveries)
    for job in deliveries:
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=job.to_json())
    counter = ReadyCounter(stack.table, dynamodb=resource(stack.moto, "dynamodb"))
    workers = [
        stack.worker(
            tmp_path / f"w{n}",
            owner=f"w{n}",
            repository=counter,
            chunk_seconds=6,
            visibility_timeout_seconds=2,
        )
        for n in (1, 2)
    ]
    run_until_empty(stack, workers)

    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    assert counter.ready_writes == 1
    assert video.chunks_done == 4
    assert video.tasks["chunk-0002"]["attempts"] == 2
    assert video.tasks["stitch"]["attempts"] == 1
    folder = download(stack, video_id, tmp_path / "out")
    for name in ("144p", "audio"):
        playlist = MediaPlaylist.parse((folder / name / "index.m3u8").read_text())
        for uri, _ in playlist.segments:
            assert fmp4.fragment_count((folder / name / uri).read_bytes()) >= 1
    assert decode_errors(folder / "master.m3u8") == ""
    assert stack.queue_depths() == (0, 0)


def test_a_chunk_that_fails_for_good_fails_the_video_with_its_reason(stack, tmp_path):
    whole = clip(size="320x180", seconds=20)
    video_id, jobs = plan_chunks(stack, tmp_path, whole)
    # The source loses its second half under the transcode.
    data = whole.read_bytes()
    key = stack.repository.get(video_id).key
    stack.s3.put_object(
        Bucket=stack.source_bucket, Key=key, Body=data[: len(data) // 2]
    )
    for job in jobs:
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=job.to_json())
    run_until_empty(stack, [stack.worker(tmp_path / "w", chunk_seconds=6)])
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert re.match(r"chunk \d of 4 \(0:\d\d-0:\d\d\): ", video.error), video.error
    assert stack.queue_depths() == (0, 0)


def test_jobs_of_a_deleted_video_do_nothing(stack, tmp_path):
    video_id, jobs = plan_chunks(stack, tmp_path, clip(size="320x180", seconds=20))
    stack.repository.delete(video_id, "owner-1")
    for job in jobs:
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=job.to_json())
    run_until_empty(stack, [stack.worker(tmp_path / "w", chunk_seconds=6)])
    assert stack.outputs(video_id) == {}
    assert stack.queue_depths() == (0, 0)


def test_a_duplicated_video_job_transcodes_once_and_outputs_never_vanish(
    stack, tmp_path
):
    video_id = stack.queue_video(clip(seconds=4))
    stack.send_job(video_id, stack.repository.get(video_id).key)
    first, second = (
        stack.worker(
            tmp_path / f"w{n}",
            owner=f"w{n}",
            visibility_timeout_seconds=3,
            heartbeat_seconds=1,
        )
        for n in (1, 2)
    )
    threads = [
        threading.Thread(target=lambda w=w: w.poll_once(wait_seconds=0))
        for w in (first, second)
    ]
    for thread in threads:
        thread.start()
    missing = []

    def watch_master():
        while any(t.is_alive() for t in threads):
            video = stack.repository.get(video_id)
            if video.status == Status.READY:
                try:
                    stack.s3.head_object(Bucket=stack.output_bucket, Key=video.playback)
                except stack.s3.exceptions.ClientError:
                    missing.append(time.monotonic())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_master)
    watcher.start()
    for thread in threads:
        thread.join()
    watcher.join()
    # The delivery that found the task held comes back after the lease.
    run_until_empty(stack, [second, first])
    video = stack.repository.get(video_id)
    assert video.status == Status.READY
    assert video.tasks["video"]["attempts"] == 1
    assert missing == []
    assert stack.queue_depths() == (0, 0)


# --- limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        (
            {"max_duration_seconds": 2},
            lambda: clip(seconds=3),
            "above the 0:02 maximum duration (maxSourceMinutes)",
        ),
        (
            {"max_frame_size": "320x180"},
            lambda: clip(seconds=1),
            "frames are 640x360, above the largest frame size 320x180 (maxFrameSize)",
        ),
        (
            {"max_frame_rate": 24},
            lambda: clip(seconds=1),
            "30 frames per second, above the 24 fps maximum (maxFrameRate)",
        ),
    ],
    ids=["duration", "frame-size", "frame-rate"],
)
def test_a_source_over_a_limit_fails_naming_it(
    stack, tmp_path, overrides, path, reason
):
    from vod.settings import FrameSize

    if "max_frame_size" in overrides:
        overrides = {"max_frame_size": FrameSize.parse(overrides["max_frame_size"])}
    video_id = stack.queue_video(path())
    assert stack.worker(tmp_path / "w", **overrides).poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert reason in video.error
    assert stack.outputs(video_id) == {}
    assert stack.queue_depths() == (0, 0)


def test_a_task_over_its_time_budget_fails_the_video(stack, tmp_path):
    video_id = stack.queue_video(clip(size="1280x720", seconds=8))
    worker = stack.worker(
        tmp_path / "w",
        job_time_factor=0.001,
        job_time_allowance_seconds=0,
        heartbeat_seconds=1,
    )
    started = time.monotonic()
    assert worker.poll_once(wait_seconds=0)
    video = stack.repository.get(video_id)
    assert video.status == Status.FAILED
    assert "took longer than its time budget" in video.error
    assert time.monotonic() - started < 4
    assert stack.queue_depths() == (0, 0)


class RecordWrites(VideoRepository):
    """The real table adapter, keeping the record after every write."""

    def __init__(self, table_name, *, dynamodb):
        super().__init__(table_name, dynamodb=dynamodb)
        self.seen = []

    def apply(self, video_id, update):
        result = super().apply(video_id, update)
        if result.video is not None:
            self.seen.append(result.video)
        return result


def test_the_start_plays_before_the_whole_audio_track_is_encoded(
    stack, tmp_path, monkeypatch
):
    """A long source's audio takes minutes; its start takes a second. The
    audio task publishes its segments as it goes, so the video plays once
    its first chunk is done."""
    monkeypatch.setattr("worker.jobs.AUDIO_PUBLISH_SECONDS", 0)
    video_id, jobs = plan_chunks(stack, tmp_path, clip(size="160x90", seconds=60))
    reports = RecordWrites(stack.table, dynamodb=resource(stack.moto, "dynamodb"))
    worker = stack.worker(tmp_path / "w", repository=reports, chunk_seconds=6)
    chunk, audio = jobs[0], jobs[1]
    assert audio.task == "audio"
    for job in (chunk, audio):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=job.to_json())
        assert worker.poll_once(wait_seconds=0)
    partial = [
        v
        for v in reports.seen
        if "facts" in v.tasks.get("audio", {}) and not v.tasks["audio"]["done"]
    ]
    assert partial, "the audio was reported before it was done"
    first = next(v for v in partial if v.playable)
    assert first.playable_until == pytest.approx(6.0)
    (track,) = json.loads(first.tasks["audio"]["facts"])["tracks"]
    reached = sum(track["durations"])
    assert 6.0 <= reached < 60
    text = stack.read_output(video_id, "audio/index.m3u8").decode()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text


def test_the_audio_so_far_skips_what_ffmpeg_is_still_writing(tmp_path):
    def write(folder, init, playlist, *segments):
        folder.mkdir()
        (folder / "init_0.mp4").write_bytes(init)
        for segment in segments:
            (folder / segment).write_bytes(b"data")
        (folder / "index.m3u8").write_text(
            '#EXTM3U\n#EXT-X-MAP:URI="init_0.mp4"\n' + playlist
        )

    write(
        tmp_path / "audio",
        b"init",
        "#EXTINF:5.994667,\nseg_00000.m4s\n#EXTINF:5.994667,\nseg_00001.m4s\n"
        "#EXTINF:5.99,\nseg_000",
        "seg_00000.m4s",
        "seg_00001.m4s",
    )
    uploads: list[Any] = []
    reports: list[Any] = []
    so_far = AudioSoFar(
        tmp_path,
        2,
        prefix="videos/v1/",
        upload=uploads.append,
        reached=reports.append,
        clock=itertools.count(10).__next__,
    )
    so_far(1.0)
    assert uploads == reports == [], "the second track has no segment yet"
    write(
        tmp_path / "audio2",
        b"init2",
        "#EXTINF:5.994667,\nseg_00000.m4s\n",
        "seg_00000.m4s",
    )
    so_far(2.0)
    so_far(3.0)
    assert [sorted(files) for files in uploads] == [
        [
            f"videos/v1/audio/{fmp4.content_name(b'init')}",
            "videos/v1/audio/seg_00000.m4s",
            "videos/v1/audio/seg_00001.m4s",
            f"videos/v1/audio2/{fmp4.content_name(b'init2')}",
            "videos/v1/audio2/seg_00000.m4s",
        ]
    ]
    assert reports == [
        {
            "tracks": [
                {"durations": [5.994667, 5.994667], "init": fmp4.content_name(b"init")},
                {"durations": [5.994667], "init": fmp4.content_name(b"init2")},
            ]
        }
    ]


def _read(url: str) -> bytes:
    return Path(unquote(urlsplit(url).path)).read_bytes()


def conforms(master: Path) -> None:
    check_vod_with_ffprobe(master.as_uri(), _read)


@pytest.mark.parametrize("kind", ["single", "chunked"])
def test_both_paths_conform_to_apples_hls_authoring_spec(encoded, kind):
    conforms(encoded.folders[kind] / "master.m3u8")


def test_a_caption_track_is_a_conformant_subtitles_rendition(encoded, tmp_path):
    """The captions function publishes a track onto the one-run video: the
    stream still conforms, with the subtitle clauses (and fails S3 once a
    segment loses its X-TIMESTAMP-MAP); its cues' clock
    (MPEGTS 0 at LOCAL 0) is the video's, whose first frame is shown after
    the B-frame reorder delay (two frames: 67 ms at 30 fps) and no later; and
    taking the track off restores the master byte for byte."""
    stack = encoded.stack
    video = stack.repository.get(encoded.single)
    original = stack.read_output(video.id, "master.m3u8")
    publisher = CaptionsPublisher(
        s3=stack.s3, bucket=stack.output_bucket, videos=stack.repository
    )
    track = CaptionTrack("en", "English", auto=False, revision="r1")
    stack.s3.put_object(
        Bucket=stack.output_bucket,
        Key=track.source_key(video.id),
        Body=b"WEBVTT\n\n00:00:01.000 --> 00:00:07.000\nHello\n",
    )
    captioned = stack.repository.put_caption(video.id, track)
    publisher.record_changed(video, captioned)
    published = stack.repository.get(video.id)

    def fetch(url: str) -> bytes:
        # http://outputs/videos/{id}/{name}
        data: bytes = stack.read_output(video.id, urlsplit(url).path.split("/", 3)[3])
        return data

    check_vod_with_ffprobe(f"http://outputs/{published.playback}", fetch)
    segment = f"{track.folder(video.id)}00000.vtt"
    good = stack.s3.get_object(Bucket=stack.output_bucket, Key=segment)["Body"].read()
    stack.s3.put_object(
        Bucket=stack.output_bucket,
        Key=segment,
        Body=good.replace(b"X-TIMESTAMP-MAP", b"X-NOTHING"),
    )
    with pytest.raises(Nonconformance, match=r"^S3:"):
        check_vod_with_ffprobe(f"http://outputs/{published.playback}", fetch)
    rung = MediaPlaylist.parse(stack.read_output(video.id, "144p/index.m3u8").decode())
    first = tmp_path / "first.mp4"
    first.write_bytes(
        stack.read_output(video.id, f"144p/{rung.init}")
        + stack.read_output(video.id, f"144p/{rung.segments[0][0]}")
    )
    start = probe_json(
        first, "-select_streams", "v", "-show_entries", "stream=start_time"
    )["streams"][0]["start_time"]
    assert 0 <= float(start) - MPEGTS_AT_ZERO / 90_000 <= 2 / 30 + 0.001

    assert stack.repository.remove_caption(video.id, video.owner, "en")
    publisher.record_changed(published, stack.repository.get(video.id))
    assert stack.read_output(video.id, "master.m3u8") == original
    assert not [name for name in stack.outputs(video.id) if name.startswith("subs/")]


@pytest.mark.parametrize(
    ("kind", "playlist", "old", "new", "clause"),
    [
        ("chunked", "master.m3u8", ",CLOSED-CAPTIONS=NONE", "", "M4"),
        ("chunked", "master.m3u8", ',LANGUAGE="fr"', "", "M6"),
        ("chunked", "master.m3u8", 'CODECS="avc1.64', 'CODECS="avc1.4d', "M5"),
        ("single", "master.m3u8", "mp4a.40.2", "mp4a.40.5", "M5"),
        (
            "chunked",
            "240p/index.m3u8",
            "#EXTINF",
            "#EXT-X-DISCONTINUITY\n#EXTINF",
            "P3",
        ),
        ("chunked", "240p/index.m3u8", "#EXT-X-ENDLIST\n", "", "P1"),
        ("single", "master.m3u8", "#EXT-X-I-FRAME-STREAM-INF:", "#EXT-X-OTHER:", "I1"),
        ("single", "240p/iframes.m3u8", "#EXT-X-I-FRAMES-ONLY\n", "", "I2"),
        ("single", "240p/iframes.m3u8", "#EXTINF:2.000000,", "#EXTINF:1.9,", "I3"),
        ("chunked", "240p/iframes.m3u8", "@", "@1", "I4"),
        (
            "chunked",
            "master.m3u8",
            ',AUDIO="group_audio"\n',
            ',SUBTITLES="subs"\n',
            "S1",
        ),
    ],
)
def test_the_conformance_check_fails_a_playlist_broken_on_purpose(
    encoded, tmp_path, kind, playlist, old, new, clause
):
    broken = tmp_path / "broken"
    shutil.copytree(encoded.folders[kind], broken)
    path = broken / playlist
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(Nonconformance, match=f"^{clause}:"):
        conforms(broken / "master.m3u8")


def test_an_i_frame_range_short_of_its_keyframe_fails_the_check(encoded, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(encoded.folders["single"], broken)
    path = broken / "240p" / "iframes.m3u8"
    text = path.read_text()
    # The second keyframe of the first segment: split off by the worker.
    ranges = re.findall(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", text)
    length, offset = ranges[1]
    path.write_text(text.replace(f":{length}@{offset}", f":{int(length) - 1}@{offset}"))
    with pytest.raises(Nonconformance, match=r"^I4: .* decodes to a keyframe at None"):
        conforms(broken / "master.m3u8")
