"""Every test runs in tiny mode, offline, with its own temporary folders."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="playground-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ["PLAYGROUND_TINY"] = "1"
os.environ.setdefault("PLAYGROUND_TINY_DIR", str(_SESSION_DIR / "tiny-models"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PLAYGROUND_MCP"] = "1"  # the app under test also serves its tabs as MCP tools
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_TEMP_DIR"] = str(_SESSION_DIR / "gradio")

import pytest  # noqa: E402

from core.models import reset_cache  # noqa: E402
from core.settings import reset_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change PLAYGROUND_* variables with the yielded monkeypatch; settings are re-read around the test."""
    reset_settings()
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()
    reset_cache()


@pytest.fixture(scope="session")
def example_image_path() -> Path:
    return ASSETS / "chelsea.jpg"


@pytest.fixture(scope="session")
def app_server() -> Iterator[SimpleNamespace]:
    """The real app, launched in this process on a free port; `loaded_at_start` is what the model
    cache held right after launch (it must be nothing: the first request loads)."""
    import app
    from core.models import get_cache

    reset_settings()
    reset_cache()
    demo = app.build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **app.launch_options())
    try:
        yield SimpleNamespace(url=url, loaded_at_start=get_cache().loaded_keys())
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(app_server: SimpleNamespace) -> str:
    return app_server.url


CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (skipped outside CI when it is not installed)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: CI must install Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser: object, app_url: str) -> Iterator[object]:
    """A browser tab on the app, shared by the tests of one module (they run in order)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    yield page
    page.close()
