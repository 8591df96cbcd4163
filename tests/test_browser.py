"""The web page in headless Chromium against the local run of the synthesized
stack: Uppy uploads a generated clip in multipart mode through
``POST /s3/sign``, a caption track is added while it uploads, the page
follows the record to READY, hls.js plays the master playlist and lists
the track the captions function published in it, and shows its cues."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local.runner import LocalPlatform
from tests.browser_support import free_allowed_port
from tests.worker_support import clip

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
CAPTIONS = "1\n00:00:00,500 --> 00:00:03,000\nHello\n"
PLAY_TIMEOUT_MS = 20_000


@pytest.fixture
def platform(synth, web_root: Path) -> Iterator[LocalPlatform]:
    with LocalPlatform(
        synth.outdir, web_root=web_root, web_port=free_allowed_port()
    ) as local:
        yield local


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
    with page.expect_response(
        lambda response: (
            response.url.endswith("/s3/sign") and response.request.method == "POST"
        )
    ) as created:
        page.click(UPLOAD_BUTTON)
    # Uploaded while the video is still uploading: published when it is READY.
    video_id = created.value.json()["key"].split("/")[2]
    token = platform.page_config()["token"]
    caption = requests.put(
        f"{platform.api_url}/videos/{video_id}/captions/en",
        data=CAPTIONS.encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "text/vtt"},
        timeout=30,
    )
    assert caption.status_code == 200, caption.text
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

    # hls.js lists the SUBTITLES rendition; choosing it loads its segments.
    menu = card.locator(".video-captions")
    assert menu.locator("option").all_inner_texts() == ["Captions off", "English"]
    menu.select_option(label="English")
    page.wait_for_function(
        """video => [...video.textTracks].some(
            track => track.label === 'English' && track.mode === 'showing'
                && [...(track.cues ?? [])].some(cue => cue.text === 'Hello')
        )""",
        arg=player.element_handle(),
        timeout=PLAY_TIMEOUT_MS,
    )
