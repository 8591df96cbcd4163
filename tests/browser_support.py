"""Shared by the browser tests: the page built from its sources, a port
the template's CORS rules allow for it, headless Chromium, and signing in
through the local run's "sign in as" form."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
)


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


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for a module's browsers: a second one started
    while another runs (a module-scoped page and a test's own) is refused."""
    with sync_playwright() as driver:
        yield driver


@contextlib.contextmanager
def chromium(driver: Playwright, profile: Path) -> Iterator[BrowserContext]:
    """Headless system Chromium with its profile in ``profile``."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    context = driver.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=list(CHROMIUM_FLAGS),
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(playwright: Playwright, tmp_path: Path) -> Iterator[Page]:
    with chromium(playwright, tmp_path / "profile") as context:
        yield context.new_page()


def sign_in(page: Page, web_url: str, email: str) -> None:
    """Open the page and sign in as ``email`` the way a person does: the
    page's button, the hosted sign-in form, and back with a code."""
    page.goto(web_url)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text(f"Signed in as {email}").wait_for()
    # The code and state are gone from the address bar (and history).
    assert page.url == f"{web_url}/"
