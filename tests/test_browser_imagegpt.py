"""A person samples images with ImageGPT in Chromium and sees rows appear, then the images."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def test_sample_images_and_see_them(page: Page) -> None:
    page.get_by_role("tab", name="ImageGPT").click()
    tab = page.locator("#tab-imagegpt")
    tab.get_by_role("button", name="Sample", exact=True).click()
    gallery = tab.locator("#imagegpt-samples")
    expect(gallery.locator("img")).to_have_count(4, timeout=120_000)  # the first call builds the tiny model
    expect(gallery).to_contain_text("sample 4")
    expect(tab.get_by_role("button", name="Sample", exact=True)).to_be_enabled()
    page.wait_for_function(
        "() => document.querySelector('#imagegpt-samples img') && "
        "document.querySelector('#imagegpt-samples img').naturalWidth === 32"
    )
    page.screenshot(path=str(ARTIFACTS / "imagegpt.png"), full_page=True)


def test_complete_an_example(page: Page) -> None:
    tab = page.locator("#tab-imagegpt")
    tab.get_by_role("tab", name="Complete").click()
    tab.locator("img[src*='astronaut']").first.click()
    tab.get_by_role("button", name="Complete", exact=True).click()
    expect(tab.locator("#imagegpt-steps")).to_contain_text("kept: top 16 rows", timeout=60_000)
    expect(tab.locator("#imagegpt-completions img")).to_have_count(4, timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "imagegpt-complete.png"), full_page=True)
