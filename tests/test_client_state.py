"""The CLI's pure parts: resume state, part plan and backoff, without a server."""

from __future__ import annotations

import os

import pytest

from client.state import LocalFile, StateStore, UploadState, default_state_dir
from client.transport import Backoff
from client.uploader import Part, plan_parts

API = "http://127.0.0.1:9000"


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x" * 1000)
    return path


def state_of(path, api=API) -> UploadState:
    return UploadState(
        api_url=api,
        file=LocalFile.of(path),
        upload_id="upload-1",
        key="uploads/owner/video/clip.mp4",
        video_id="video",
        part_size=5 * 1024 * 1024,
    )


def test_a_saved_state_loads_back_for_the_same_file_and_api(tmp_path, video):
    store = StateStore(tmp_path / "state")
    state = state_of(video)
    saved = store.save(state)

    assert store.load(API + "/", LocalFile.of(video)) == state
    assert [p.name for p in (tmp_path / "state").iterdir()] == [saved.name]

    store.delete(state)
    assert store.load(API, LocalFile.of(video)) is None


def test_a_changed_file_or_another_api_does_not_resume(tmp_path, video):
    store = StateStore(tmp_path)
    store.save(state_of(video))

    assert store.load("http://127.0.0.1:9001", LocalFile.of(video)) is None
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.load(API, LocalFile.of(video)) is None


def test_an_unreadable_state_file_starts_over(tmp_path, video):
    store = StateStore(tmp_path)
    file = LocalFile.of(video)
    store.path_for(API, file).write_text("{not json")
    assert store.load(API, file) is None
    store.path_for(API, file).write_text('{"apiUrl": "x"}')
    assert store.load(API, file) is None


def test_a_relative_path_is_the_same_file_as_its_absolute_path(
    tmp_path, video, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert LocalFile.of("clip.mp4") == LocalFile.of(video)


def test_the_state_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VOD_STATE_DIR", str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("VOD_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "vod"


@pytest.mark.parametrize(
    ("size", "part_size", "expected"),
    [
        (10, 4, [Part(1, 0, 4), Part(2, 4, 4), Part(3, 8, 2)]),
        (8, 4, [Part(1, 0, 4), Part(2, 4, 4)]),
        (3, 4, [Part(1, 0, 3)]),
    ],
)
def test_parts_cover_the_file_once_with_a_short_last_part(size, part_size, expected):
    assert plan_parts(size, part_size) == expected


def test_backoff_grows_to_its_cap_with_jitter():
    backoff = Backoff(attempts=8, base=0.5, cap=3.0)
    delays = {retry: [backoff.delay(retry) for _ in range(200)] for retry in (1, 3, 6)}
    assert max(delays[1]) <= 0.5
    assert max(delays[3]) <= 2.0
    assert max(delays[6]) <= 3.0
    assert max(delays[6]) > 2.0
    assert len(set(delays[6])) > 100
