"""The whole pipeline on the local run: the ``vod`` CLI uploads a generated
clip, the platform built from the synthesized template takes it to READY,
and the master playlist and every segment it names are fetched over HTTP
from the local playback reader. Then ``make demo``'s entry point does the
same and exits cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from local.demo import generate_clip
from local.runner import ROOT, LocalPlatform
from tests.test_local_runner import refuses

TIMEOUT = 10
_URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s of 640x360 video with a tone: one rung, quick to transcode."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return generate_clip(path, seconds=2, size="640x360")


def python_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def referenced(playlist_url: str, text: str) -> list[str]:
    """Absolute URLs of what an HLS playlist names: URI lines and URI="..."
    attributes (renditions, init segments)."""
    names = [line for line in text.splitlines() if line and not line.startswith("#")]
    names += _URI_ATTRIBUTE.findall(text)
    return [urljoin(playlist_url, name) for name in names]


def fetch(url: str) -> requests.Response:
    response = requests.get(url, timeout=TIMEOUT)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    assert response.content, url
    return response


def test_a_cli_upload_becomes_hls_served_by_the_playback_reader(synth, clip, tmp_path):
    with LocalPlatform(
        synth.outdir, web_port=0, run_dir=tmp_path / "run", worker_stop_seconds=1
    ) as platform:
        token = platform.mint_token()
        upload = subprocess.run(
            [
                sys.executable,
                "-m",
                "client",
                "upload",
                str(clip),
                "--api",
                platform.api_url,
                "--token",
                token,
                "--state-dir",
                str(tmp_path / "state"),
            ],
            capture_output=True,
            text=True,
            env=python_env(),
            timeout=60,
            check=False,
        )
        assert upload.returncode == 0, upload.stderr
        video_id = upload.stdout.strip().splitlines()[-1]
        statuses: list[str] = []
        record = platform.wait_for_video(
            video_id,
            token,
            timeout=120,
            on_update=lambda r: statuses.append(r["status"]),
        )
        assert record["status"] == "READY"
        assert "QUEUED" in statuses or "PROCESSING" in statuses
        master_url = record["playbackUrl"]
        assert master_url.startswith(platform.playback_url + "/videos/")
        master = fetch(master_url)
        assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        media_playlists = referenced(master_url, master.text)
        assert media_playlists
        segments = []
        for playlist_url in media_playlists:
            playlist = fetch(playlist_url)
            assert playlist.text.startswith("#EXTM3U")
            segments += referenced(playlist_url, playlist.text)
        assert segments
        for segment in segments:
            assert fetch(segment).headers["Content-Type"] == "video/mp4"
        assert fetch(record["posterUrl"]).headers["Content-Type"] == "image/jpeg"


def processes_under(path: Path) -> list[int]:
    """Processes whose command line or working directory is under ``path``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(path) in command or cwd.startswith(str(path)):
            found.append(int(entry.name))
    return found


def test_the_demo_reaches_ready_prints_the_playback_url_and_stops_on_ctrl_c(
    synth, clip, tmp_path
):
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.demo",
            "--assembly",
            str(synth.outdir),
            "--file",
            str(clip),
            "--web-port",
            "0",
        ],
        cwd=tmp_path,
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    assert demo.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if len(lines) > 1 and lines[-2].startswith("Serving until Ctrl-C"):
                break
        output = "\n".join(lines)
        assert lines[-2:-1] == [
            "Serving until Ctrl-C. The page, where the demo user "
            "(demo@example.com) finds the video uploaded:"
        ], output
        page = lines[-1].strip()
        assert page.startswith("http://localhost:"), output
        assert page.endswith("/"), output
        assert requests.get(page, timeout=10).ok
        (playback,) = [
            line.split(": ", 1)[1] for line in lines if line.startswith("Playback URL")
        ]
        assert playback.endswith("/master.m3u8")
        assert fetch(playback).text.startswith("#EXTM3U")
        (api,) = [line.split()[1] for line in lines if line.strip().startswith("API ")]
        assert f"  export VOD_API_URL={api}" in lines
        (token,) = [
            line.split("=", 1)[1] for line in lines if "export VOD_TOKEN=" in line
        ]
        assert requests.get(
            f"{api}/videos", headers={"authorization": f"Bearer {token}"}, timeout=10
        ).ok
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.stdout.read().strip().endswith("Stopped.")
    assert (tmp_path / ".demo" / "run" / "logs" / "worker-1.log").is_file()
    assert (tmp_path / ".demo" / "upload-state").is_dir()
    assert refuses(api)
    assert refuses(playback)
    assert processes_under(tmp_path) == []
    assert processes_under(synth.outdir) == []
