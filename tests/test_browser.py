"""The web page in headless Chromium against the local run of the synthesized
stack: Uppy uploads a generated clip in multipart mode through
``POST /s3/sign``, the page follows the record to READY, and hls.js plays
the master playlist."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

from local.runner import LocalPlatform
from tests.conftest import ROOT, cdk_json_context
from tests.worker_support import clip

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
)
UPLOAD_INPUT = 'input.uppy-Dashboard-input[name="files[]"]'
UPLOAD_BUTTON = ".uppy-StatusBar-actionBtn--upload"
CARD = "#videos .video"
#: The card settles in a terminal status, or Uppy reports a failed upload.
SETTLED = f"""() => {{
    const card = document.querySelector('{CARD}')
    return ['READY', 'FAILED', 'ABORTED'].includes(card?.dataset.status)
        || document.querySelector('.uppy-StatusBar.is-error') !== null
}}"""
SETTLE_TIMEOUT_MS = 120_000
PLAY_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page built from the sources, so the test never sees a stale bundle."""
    out = tmp_path_factory.mktemp("web")
    subprocess.run(
        ["node", str(ROOT / "web" / "build.mjs"), str(out)],
        check=True,
        timeout=120,
    )
    return out


def free_allowed_port() -> int:
    """A free port of a ``http://localhost:N`` origin that the template's
    CORS rules allow, since the page's origin must be one of them."""
    origins: list[str] = cdk_json_context()["allowedOrigins"]
    for origin in origins:
        parts = urlsplit(origin)
        if parts.hostname != "localhost" or parts.port is None:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", parts.port))
            except OSError:
                continue
        return parts.port
    pytest.skip("every localhost origin the template allows is in use on this host")


@pytest.fixture
def platform(synth, web_root: Path) -> Iterator[LocalPlatform]:
    with LocalPlatform(
        synth.outdir, web_root=web_root, web_port=free_allowed_port()
    ) as local:
        yield local


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_FLAGS),
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_the_page_uploads_with_uppy_and_plays_the_ready_video(platform, page, tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copyfile(clip(seconds=4), video)
    signed = []
    page.on(
        "request",
        lambda request: (
            signed.append(json.loads(request.post_data or "{}"))
            if request.method == "POST" and request.url.endswith("/s3/sign")
            else None
        ),
    )

    page.goto(platform.web_url)
    page.set_input_files(UPLOAD_INPUT, video)
    page.click(UPLOAD_BUTTON)
    page.wait_for_function(SETTLED, timeout=SETTLE_TIMEOUT_MS)

    card = page.locator(CARD)
    assert card.get_attribute("data-status") == "READY", page.locator(
        ".video-error, .uppy-Informer"
    ).all_inner_texts()
    assert card.locator(".video-title").inner_text() == "clip.mp4"
    # Multipart through signRequest: create, one part, complete.
    assert [(s["method"], "uploadId" in s, s.get("partNumber")) for s in signed] == [
        ("POST", False, None),
        ("PUT", True, 1),
        ("POST", True, None),
    ]

    player = card.locator("video")
    page.wait_for_function(
        "video => video.currentTime > 0",
        arg=player.element_handle(),
        timeout=PLAY_TIMEOUT_MS,
    )
    started = player.evaluate("video => video.currentTime")
    page.wait_for_function(
        "([video, from]) => video.currentTime > from + 0.5",
        arg=[player.element_handle(), started],
        timeout=PLAY_TIMEOUT_MS,
    )
    assert player.evaluate("video => !video.paused && video.videoWidth > 0")
    assert not card.locator(".video-error").is_visible()
