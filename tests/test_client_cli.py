"""The ``vod`` commands against the local HTTP API: what they print, and one
``error:`` line with a non-zero exit for every expected failure."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from client.cli import main
from client.transport import Backoff
from tests.api_stack import MIB, serve_api
from vod.model import Status
from vod.repository import VideoRepository

MAX_UPLOAD = 8 * MIB


@pytest.fixture
def stack(aws_env, moto):
    with serve_api(moto, max_upload=MAX_UPLOAD) as stack:
        yield stack


@pytest.fixture(autouse=True)
def no_backoff_sleep(monkeypatch):
    """Retries still happen; only the waits between them are skipped."""
    monkeypatch.setattr(Backoff, "delay", lambda _self, _retry: 0.0)


@pytest.fixture
def vod(stack, capsys, tmp_path):
    """Run a command as the owner; (exit code, stdout, stderr)."""

    def run(*args: str, token: str | None = None):
        code = main(
            [
                *args,
                "--api",
                stack.api.url,
                "--token",
                token or stack.owner.token,
            ]
        )
        out, err = capsys.readouterr()
        return code, out, err

    return run


def new_video(stack, filename: str = "clip.mp4"):
    created = stack.owner.ok(
        "POST", "/s3/multipart", json={"filename": filename, "type": "video/mp4"}
    )
    return created["videoId"]


def assert_one_error_line(err: str, expected: str) -> None:
    assert err.splitlines() == [f"error: {expected}"]


def test_an_api_refusal_is_one_line_and_a_non_zero_exit(vod, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    big = tmp_path / "big.mp4"
    with big.open("wb") as file:
        file.truncate(MAX_UPLOAD + 1)

    code, out, err = vod(
        "upload", str(notes), "--type", "text/plain", "--state-dir", str(tmp_path / "s")
    )
    assert (code, out) == (1, "")
    assert_one_error_line(err, "400 type text/plain is not allowed; allowed: video/*")

    # Without --type, the name alone says it is no video.
    code, out, err = vod("upload", str(notes), "--state-dir", str(tmp_path / "s"))
    assert (code, out) == (1, "")
    assert_one_error_line(
        err,
        "notes.txt: cannot tell the video type from the name; pass it with "
        "--type, e.g. --type video/mp4",
    )

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, out, err = vod("upload", str(empty), "--state-dir", str(tmp_path / "s"))
    assert (code, out) == (1, "")
    assert_one_error_line(err, "empty.mp4: the file is empty")

    code, out, err = vod("upload", str(big), "--state-dir", str(tmp_path / "s"))
    assert (code, out) == (1, "")
    assert_one_error_line(
        err,
        f"400 size {MAX_UPLOAD + 1} is above the maximum upload of {MAX_UPLOAD} bytes",
    )
    assert not (tmp_path / "s").exists()


def test_a_wrong_token_is_a_401_line(vod, tmp_path):
    code, _, err = vod("list", token="not-a-token")
    assert code == 1
    assert_one_error_line(err, "401 Unauthorized (check --token or $VOD_TOKEN)")


def test_a_missing_file_and_an_api_that_is_not_there_are_one_line(
    vod, tmp_path, capsys
):
    missing = tmp_path / "missing.mp4"
    code, _, err = vod("upload", str(missing))
    assert code == 1
    assert_one_error_line(err, f"{missing}: No such file or directory")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    code = main(["list", "--api", f"http://127.0.0.1:{closed_port}", "--token", "t"])
    _, err = capsys.readouterr()
    assert code == 1
    assert_one_error_line(
        err, f"cannot reach http://127.0.0.1:{closed_port}: Connection refused"
    )


def test_list_status_and_delete(stack, vod):
    first, second = new_video(stack, "first.mp4"), new_video(stack, "second.mp4")
    new_video_of_other = stack.other.ok(
        "POST", "/s3/multipart", json={"filename": "x.mp4", "type": "video/mp4"}
    )["videoId"]

    code, out, _ = vod("list")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert [(row[0], row[1], row[-1]) for row in rows] == [
        (second, "UPLOADING", "second.mp4"),
        (first, "UPLOADING", "first.mp4"),
    ]
    assert new_video_of_other not in out

    code, out, _ = vod("status", first)
    assert code == 0
    record = json.loads(out)
    assert (record["id"], record["status"], record["filename"]) == (
        first,
        "UPLOADING",
        "first.mp4",
    )

    code, _, err = vod("delete", first)
    assert (code, err.strip()) == (0, f"deleted {first}")
    code, _, err = vod("status", first)
    assert code == 1
    assert_one_error_line(err, "404 video not found")
    code, out, _ = vod("list")
    assert [line.split()[0] for line in out.splitlines()] == [second]


def test_list_with_no_videos_says_so(vod):
    code, out, err = vod("list")
    assert (code, out, err.strip()) == (0, "", "no videos")


def test_wait_follows_the_record_until_ready_and_prints_the_playback_url(stack, vod):
    video_id = new_video(stack)
    videos = VideoRepository(stack.table)
    for status in (Status.QUEUED, Status.PROCESSING):
        assert videos.transition(video_id, status)
    videos.transition(video_id, Status.PROCESSING, fields={"progress": 40})
    outcome = {}

    def wait():
        outcome["result"] = vod("wait", video_id, "--interval", "0.05")

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), outcome
    playlist = f"videos/{video_id}/master.m3u8"
    assert videos.transition(
        video_id, Status.READY, fields={"progress": 100, "playback": playlist}
    )
    waiter.join(10)

    code, out, _ = outcome["result"]
    assert code == 0
    assert out.strip() == playlist


def test_wait_on_a_failed_video_exits_non_zero_with_the_reason(stack, vod):
    video_id = new_video(stack)
    VideoRepository(stack.table).transition(
        video_id, Status.FAILED, fields={"error": "ffprobe: no video stream"}
    )

    code, _, err = vod("wait", video_id, "--interval", "0.05")

    assert code == 1
    assert_one_error_line(err, f"video {video_id} FAILED: ffprobe: no video stream")


def test_wait_gives_up_after_its_timeout(stack, vod):
    video_id = new_video(stack)

    code, _, err = vod("wait", video_id, "--interval", "0.05", "--timeout", "0.2")

    assert code == 1
    assert (
        err.splitlines()[-1]
        == f"error: video {video_id} is still UPLOADING after 0.2 s"
    )


def test_another_users_video_is_not_found(stack, vod):
    other_video = stack.other.ok(
        "POST", "/s3/multipart", json={"filename": "x.mp4", "type": "video/mp4"}
    )["videoId"]
    for command in ("status", "delete", "wait"):
        code, _, err = vod(command, other_video)
        assert code == 1
        assert err.splitlines()[-1] == "error: 404 video not found", command


def test_a_missing_api_url_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.delenv("VOD_API_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["list", "--token", "t"])
    assert exit_.value.code == 2
    assert "--api or $VOD_API_URL is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("camera.MTS", "video/mp2t"),
        ("broadcast.ts", "video/mp2t"),
        ("bluray.m2ts", "video/mp2t"),
        ("phone.3gp", "video/3gpp"),
        ("film.mkv", "video/x-matroska"),
        ("dvd.vob", "video/mpeg"),
    ],
)
def test_common_video_files_upload_by_their_extension(
    stack, vod, tmp_path, name, media_type
):
    """The system's MIME table calls .ts Qt Linguist text and knows no .mts:
    the CLI has its own table of video extensions."""
    path = tmp_path / name
    path.write_bytes(b"\0" * 1024)
    code, out, err = vod("upload", str(path), "--state-dir", str(tmp_path / "s"))
    assert code == 0, err
    video = stack.owner.ok("GET", f"/videos/{out.strip()}")
    assert video["contentType"] == media_type
