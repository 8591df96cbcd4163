"""The web page in headless Chromium against the local run of the synthesized
stack: Uppy uploads a generated clip in multipart mode through
``POST /s3/sign``; the library lists it after a reload until it is READY with
its poster; the one player plays it with hls.js, lists the rungs in its
quality menu and the caption track added while it uploaded in its captions
menu, and shows the sprite's thumbnails over the scrub bar; rename,
copy and delete work; and the page fits a 360 px phone. The tests share one
platform and one browser page and run in order, each from where the last
left the page; they write the README's screenshots into docs/screenshots.
Users sign in through the local hosted sign-in (code grant with PKCE); an
upload cut by a reload resumes where S3 has it; a file that is not a video
and a sign-in that expired are said in words, each on a page of its own."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from playwright.sync_api import (
    Dialog,
    FloatRect,
    Page,
    Playwright,
    Position,
    Route,
    expect,
)

from local.jwt_issuer import user_sub
from local.runner import DEMO_EMAIL, LocalPlatform
from tests.browser_support import chromium, sign_in
from tests.conftest import ROOT
from tests.test_wiring import post_upload
from tests.worker_support import clip
from vod.settings import Env

UPLOAD_INPUT = 'input.uppy-Dashboard-input[name="files[]"]'
UPLOAD_BUTTON = ".uppy-StatusBar-actionBtn--upload"
UPLOAD_DONE = ".uppy-StatusBar.is-complete"
CARD = "#videos .video"
PLAYER = "#player"
SCREENSHOTS = ROOT / "docs" / "screenshots"
SETTLE_TIMEOUT_MS = 120_000
CAPTIONS = "1\n00:00:00,500 --> 00:00:03,000\nHello\n"
PLAY_TIMEOUT_MS = 20_000
TIMEOUT = 10
PART_PUT = re.compile(r".*[?&]partNumber=\d+.*")
#: Golden Retriever has kept the file and its multipart upload's ID.
KEPT_FOR_RESUME = """() => new Promise((resolve) => {
    const opened = indexedDB.open('uppy-blobs')
    opened.onerror = () => resolve(false)
    opened.onsuccess = () => {
        const stores = opened.result.transaction(['files', 'metadata'])
        const files = stores.objectStore('files').count()
        const kept = stores.objectStore('metadata').getAll()
        kept.onsuccess = () => resolve(files.result > 0
            && kept.result.some((record) => record.metadata.includes('"s3Multipart"')))
    }
})"""


@pytest.fixture(scope="module")
def platform(synth, web_root: Path, tmp_path_factory) -> Iterator[LocalPlatform]:
    with LocalPlatform(
        synth.outdir,
        web_root=web_root,
        web_port=0,
        run_dir=tmp_path_factory.mktemp("run"),
    ) as local:
        yield local


@pytest.fixture(scope="module")
def library(
    platform: LocalPlatform, playwright: Playwright, tmp_path_factory
) -> Iterator[Page]:
    """One desktop-sized page of the app, allowed to use the clipboard."""
    with chromium(playwright, tmp_path_factory.mktemp("profile")) as context:
        context.grant_permissions(
            ["clipboard-read", "clipboard-write"], origin=platform.web_url
        )
        page = context.new_page()
        page.set_viewport_size({"width": 1000, "height": 760})
        # The demo user, whose videos the tests make with platform.mint_token().
        sign_in(page, platform.web_url, DEMO_EMAIL)
        yield page


def api(
    platform: LocalPlatform,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs,
) -> requests.Response:
    return requests.request(
        method,
        f"{platform.api_url}{path}",
        headers={"Authorization": f"Bearer {platform.mint_token()}", **(headers or {})},
        timeout=TIMEOUT,
        **kwargs,
    )


def card_titled(page: Page, title: str):
    return page.locator(CARD).filter(has=page.locator(".video-title", has_text=title))


def screenshot(page: Page, name: str, part: str | None = None) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # A clip of the full page, since scrolling an element into view would
    # end the hover that shows a preview.
    clip: FloatRect | None = None
    if part:
        box = page.locator(part).bounding_box()
        assert box is not None
        box["y"] += page.evaluate("window.scrollY")
        clip = box
    page.screenshot(path=path, full_page=True, clip=clip)


def test_an_upload_is_listed_after_a_reload_and_reaches_ready_with_its_poster(
    platform, library: Page, tmp_path
):
    # A file that is not a video ends FAILED, in words, next to the upload.
    failed_id = post_upload(platform, platform.mint_token())
    # 432p and 360p rungs (about 2 Mbit/s: a rung's cap is lowered to the
    # source's rate, and 432p must stay 1.5x above 360p), and two sprite tiles
    # (one per 2 s).
    video = tmp_path / "beach.mp4"
    shutil.copyfile(clip(size="768x432", rate="10", seconds=4, crf=12), video)
    signed = []
    library.on(
        "request",
        lambda request: (
            signed.append(json.loads(request.post_data or "{}"))
            if request.method == "POST" and request.url.endswith("/s3/sign")
            else None
        ),
    )

    library.goto(platform.web_url)
    library.set_input_files(UPLOAD_INPUT, video)
    with library.expect_response(
        lambda response: (
            response.url.endswith("/s3/sign") and response.request.method == "POST"
        )
    ) as created:
        library.click(UPLOAD_BUTTON)
    # Uploaded while the video is still uploading: published when it is READY.
    video_id = created.value.json()["key"].split("/")[2]
    caption = api(
        platform,
        "PUT",
        f"/videos/{video_id}/captions/en",
        data=CAPTIONS.encode(),
        headers={"content-type": "text/vtt"},
    )
    assert caption.status_code == 200, caption.text
    # The record is listed at the top as soon as the upload creates it.
    expect(library.locator(CARD).first.locator(".video-title")).to_have_text(
        "beach.mp4"
    )
    library.wait_for_selector(UPLOAD_DONE, timeout=SETTLE_TIMEOUT_MS)
    # Multipart through signRequest: create, one part, complete.
    assert [(s["method"], "uploadId" in s, s.get("partNumber")) for s in signed] == [
        ("POST", False, None),
        ("PUT", True, 1),
        ("POST", True, None),
    ]

    # Golden Retriever saves its state at most every 500 ms: a reload sooner
    # would find the finished upload still marked as in flight.
    library.wait_for_timeout(1000)
    library.reload()
    card = card_titled(library, "beach.mp4")
    expect(card).to_have_attribute("data-status", "READY", timeout=SETTLE_TIMEOUT_MS)
    expect(card.locator(".video-status")).to_have_text("Ready")
    expect(card.locator(".video-duration")).to_have_text("0:04")
    poster = card.locator("img.video-poster")
    expect(poster).to_be_visible()
    library.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=poster.element_handle()
    )

    failed = library.locator(f'{CARD}[data-video-id="{failed_id}"]')
    expect(failed).to_have_attribute("data-status", "FAILED", timeout=SETTLE_TIMEOUT_MS)
    expect(failed.locator(".video-status")).to_have_text("Failed")
    expect(failed.locator(".video-error")).to_contain_text("Upload the file again")
    expect(failed.locator('[data-action="play"]')).to_be_hidden()
    expect(failed.locator('[data-action="delete"]')).to_be_visible()
    # Newest first, as GET /videos lists them; polling stops once all settled.
    assert library.locator(CARD).first.get_attribute("data-video-id") != failed_id
    expect(library.locator("#videos")).to_have_attribute("data-polling", "false")
    expect(library.locator(PLAYER)).to_be_hidden()
    screenshot(library, "library")


def test_the_player_plays_with_a_quality_menu_of_the_rungs_and_scrub_thumbnails(
    platform, library: Page
):
    card = card_titled(library, "beach.mp4")
    record = api(
        platform, "GET", f"/videos/{card.get_attribute('data-video-id')}"
    ).json()
    card.get_by_role("button", name="Play beach.mp4").click()

    player = library.locator(PLAYER)
    video = player.locator("video")
    library.wait_for_function(
        "video => video.currentTime > 0 && !video.paused",
        arg=video.element_handle(),
        timeout=PLAY_TIMEOUT_MS,
    )
    rungs = sorted(
        (r["name"] for r in record["renditions"]), key=lambda n: -int(n.rstrip("p"))
    )
    assert rungs == ["432p", "360p"]
    quality = player.get_by_label("Quality")
    assert quality.locator("option").all_inner_texts()[1:] == rungs
    assert quality.locator("option").first.inner_text().startswith("Auto")
    quality.select_option(label="360p")
    library.wait_for_function(
        "video => video.videoHeight === 360", arg=video.element_handle()
    )

    # hls.js lists the SUBTITLES rendition; choosing it loads its segments.
    captions = player.get_by_label("Captions")
    assert captions.locator("option").all_inner_texts() == ["Captions off", "English"]
    captions.select_option(label="English")
    library.wait_for_function(
        """video => [...video.textTracks].some(
            track => track.label === 'English' && track.mode === 'showing'
                && [...(track.cues ?? [])].some(cue => cue.text === 'Hello')
        )""",
        arg=video.element_handle(),
        timeout=PLAY_TIMEOUT_MS,
    )

    video.evaluate("video => video.pause()")
    seek = player.get_by_label("Seek, with preview pictures")
    box = seek.bounding_box()
    assert box is not None
    seek.hover(position=Position(x=box["width"] * 0.75, y=box["height"] / 2))
    thumb = player.locator(".player-thumb")
    expect(thumb).to_be_visible()
    # The second 2 s tile of the 160x90 sprite, under 0:03.
    assert "sprite.jpg" in thumb.evaluate("e => e.style.backgroundImage")
    assert thumb.evaluate("e => e.style.backgroundPosition") == "-160px 0px"
    expect(thumb).to_contain_text("0:03")
    screenshot(library, "player", PLAYER)
    player.get_by_role("button", name="Close the player").click()
    expect(player).to_be_hidden()


def test_rename_and_copy_the_playback_url_and_embed_code(platform, library: Page):
    card = card_titled(library, "beach.mp4")
    video_id = card.get_attribute("data-video-id")
    # What became of the automatic captions is said on the card.
    (table,) = {
        f.environment[Env.TABLE_NAME]
        for f in platform.functions.values()
        if Env.TABLE_NAME in f.environment
    }
    reason = {"S": "Transcribe failed: Unsupported media format"}
    platform.admin_client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": video_id}},
        UpdateExpression="SET auto_captions = :state",
        ExpressionAttributeValues={
            ":state": {"M": {"status": {"S": "FAILED"}, "reason": reason}}
        },
    )
    library.reload()
    expect(card.locator(".video-note")).to_have_text(
        "No automatic captions: Transcribe failed: Unsupported media format."
    )
    card.get_by_role("button", name="Rename beach.mp4").click()
    dialog = library.locator("#rename-dialog")
    dialog.get_by_label("Title").fill("Beach at noon")
    dialog.get_by_role("button", name="Save").click()
    expect(card_titled(library, "Beach at noon")).to_have_count(1)
    expect(library.locator("#announcer")).to_have_text("Renamed to Beach at noon")
    record = api(platform, "GET", f"/videos/{video_id}").json()
    assert record["title"] == "Beach at noon"

    card = card_titled(library, "Beach at noon")
    card.get_by_role("button", name="Copy URL Beach at noon").click()
    expect(library.locator("#announcer")).to_contain_text("Copied the playback URL")
    assert library.evaluate("navigator.clipboard.readText()") == record["playbackUrl"]
    card.get_by_role("button", name="Copy embed Beach at noon").click()
    expect(library.locator("#announcer")).to_contain_text("Copied the embed code")
    snippet = library.evaluate("navigator.clipboard.readText()")
    assert f"const source = '{record['playbackUrl']}'" in snippet
    assert "hls.js@1." in snippet


def test_a_phone_360_px_wide_pages_through_the_library_without_sideways_scroll(
    platform, library: Page
):
    library.set_viewport_size({"width": 360, "height": 740})
    # Pages of one video, so that the two listed take the API's cursor.
    library.route(
        "**/videos?limit=*",
        lambda route: route.continue_(
            url=re.sub(r"limit=\d+", "limit=1", route.request.url)
        ),
    )
    library.reload()
    more = library.get_by_role("button", name="Load older videos")
    expect(library.locator(CARD)).to_have_count(1)
    newest = library.locator(CARD).first.get_attribute("data-video-id")
    for _ in range(3):
        if not more.is_visible():
            break
        more.click()
        # Hidden or not, the button is enabled again once the page is in.
        expect(library.locator("#load-more")).to_be_enabled()
    expect(more).to_be_hidden()
    expect(library.locator(CARD)).to_have_count(2)
    assert library.locator(CARD).first.get_attribute("data-video-id") == newest
    library.unroute("**/videos?limit=*")
    assert library.evaluate("document.documentElement.scrollWidth") <= 360
    # Every control can be reached by keyboard and has a name.
    unnamed = library.evaluate(
        """() => [...document.querySelectorAll('button, input, select')]
            .filter(e => e.offsetParent !== null)
            .filter(e => e.tabIndex < 0 || !(e.labels?.length
                || e.getAttribute('aria-label') || e.textContent.trim()))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    screenshot(library, "phone")
    library.set_viewport_size({"width": 1000, "height": 760})


def test_delete_asks_first_then_removes_the_failed_video(platform, library: Page):
    failed = library.locator(f'{CARD}[data-status="FAILED"]')
    video_id = failed.get_attribute("data-video-id")
    name = failed.locator(".video-title").inner_text()
    dialog = library.locator("#delete-dialog")

    failed.get_by_role("button", name=f"Delete {name}").click()
    expect(dialog).to_contain_text(name)
    dialog.get_by_role("button", name="Cancel").click()
    expect(failed).to_have_count(1)
    assert api(platform, "GET", f"/videos/{video_id}").status_code == 200

    failed.get_by_role("button", name=f"Delete {name}").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(failed).to_have_count(0)
    expect(library.locator("#announcer")).to_have_text(f"Deleted {name}")
    assert api(platform, "GET", f"/videos/{video_id}").status_code == 404


def padded_clip(path: Path, size: int) -> Path:
    """A tiny clip grown to ``size`` bytes by a trailing MP4 ``free`` box,
    which players skip: several upload parts, next to nothing to encode."""
    data = clip(size="160x90", rate="10", seconds=1, audio=False).read_bytes()
    padding = size - len(data)
    path.write_bytes(data + struct.pack(">I", padding) + b"free" + bytes(padding - 8))
    return path


def test_an_upload_cut_by_a_reload_resumes_with_only_the_missing_parts(
    platform, page, tmp_path
):
    # Uppy's parts are 5 MiB: 5, 5 and 1.
    video = padded_clip(tmp_path / "long.mp4", 11 * 2**20)
    sent: list[int] = []
    held: list[Route] = []
    part_urls: list[str] = []

    def on_part(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        number = int(dict(parse_qsl(urlsplit(route.request.url).query))["partNumber"])
        sent.append(number)
        part_urls.append(route.request.url)
        if number == 2 and not held:
            held.append(route)  # left unanswered: the reload comes mid-part
        else:
            route.continue_()

    page.route(PART_PUT, on_part)
    list_parts: list[str] = []
    refreshes: list[str] = []
    page.on(
        "request",
        lambda request: (
            list_parts.append(request.url)
            if request.method == "GET" and "uploadId=" in request.url
            else refreshes.append(request.url)
            if "grant_type=refresh_token" in (request.post_data or "")
            else None
        ),
    )

    sign_in(page, platform.web_url, "resumer@example.com")
    page.set_input_files(UPLOAD_INPUT, video)
    page.click(UPLOAD_BUTTON)
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_function(KEPT_FOR_RESUME, polling=100, timeout=10_000)
    assert sent == [1, 2]
    # Due for a refresh: the resumed upload refreshes the tokens first.
    page.evaluate("""() => {
        const tokens = JSON.parse(sessionStorage.getItem('vod.tokens'))
        const due = {...tokens, expiresAt: Date.now()}
        sessionStorage.setItem('vod.tokens', JSON.stringify(due))
    }""")
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.type)
        dialog.accept()

    page.once("dialog", on_dialog)
    page.reload()
    page.wait_for_selector(UPLOAD_DONE, timeout=SETTLE_TIMEOUT_MS)

    assert dialogs == ["beforeunload"]
    assert sent == [1, 2, 2, 3]
    assert len(list_parts) == 1
    assert len(refreshes) == 1
    bucket, key = unquote(urlsplit(part_urls[0]).path).lstrip("/").split("/", 1)
    stored = platform.admin_client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    assert (
        hashlib.sha256(stored.read()).digest()
        == hashlib.sha256(video.read_bytes()).digest()
    )

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('vod.tokens')") is None


def test_a_non_video_another_accounts_upload_and_an_expired_sign_in_are_said(
    platform, page, tmp_path
):
    sign_in(page, platform.web_url, "first@example.com")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    page.set_input_files(UPLOAD_INPUT, notes)
    message = page.locator(".upload-error")
    expect(message).to_have_text(re.compile(r"^notes\.txt is not a video: pick"))

    # An upload cut short, kept for resuming; the tab closes (its tokens go)
    # and another person signs in here: it is dropped, not resumed.
    sent: list[int] = []

    def on_part(route: Route) -> None:
        number = int(dict(parse_qsl(urlsplit(route.request.url).query))["partNumber"])
        if route.request.method == "PUT":
            sent.append(number)
        if number == 1 or route.request.method != "PUT":
            route.continue_()

    page.route(PART_PUT, on_part)
    page.set_input_files(UPLOAD_INPUT, padded_clip(tmp_path / "cut.mp4", 6 * 2**20))
    page.click(UPLOAD_BUTTON)
    deadline = time.monotonic() + 30
    while len(sent) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_function(KEPT_FOR_RESUME, polling=100, timeout=10_000)
    page.evaluate("() => sessionStorage.clear()")
    page.on("dialog", lambda dialog: dialog.accept())
    email = "lapsed@example.com"
    sign_in(page, platform.web_url, email)
    expect(message).to_have_text(
        "Uploads another account started in this browser were discarded."
    )
    expect(page.locator(".uppy-Dashboard-Item")).to_have_count(0)
    page.wait_for_function(f"async () => !(await ({KEPT_FOR_RESUME})())", polling=100)
    assert sorted(sent) == [1, 2]

    # The API refuses the access token (expired early) and the sign-in
    # service the refresh token (revoked).
    expired = platform.issuer.mint(user_sub(email), ttl=-60)
    page.evaluate(
        """(access) => {
            const tokens = JSON.parse(sessionStorage.getItem('vod.tokens'))
            const expiresAt = Date.now() + 3600e3
            sessionStorage.setItem('vod.tokens',
                JSON.stringify({...tokens, access, refresh: 'revoked', expiresAt}))
        }""",
        expired,
    )
    page.reload()
    # The library's first call finds out, and the user is signed out.
    expect(page.locator("#notice")).to_have_text("Your sign-in expired: sign in again")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    expect(page.locator(".uppy-Dashboard--isDisabled")).to_have_count(1)
