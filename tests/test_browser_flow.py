"""A person in Chromium: open the Flow tab, pick the example pair, compute DIS flow, read the numbers."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def test_example_pair_with_dis(page: Page) -> None:
    page.get_by_role("tab", name="Flow", exact=True).click()
    tab = page.locator("#tab-flow")
    tab.locator("img[src*='flow_frame1']").first.click()
    expect(tab.locator("img[src*='flow_frame2']")).to_have_count(2)
    tab.get_by_role("button", name="Compute flow", exact=True).click()

    stats = page.locator("#flow-stats")
    expect(stats).to_contain_text("DIS (medium)")
    expect(stats).to_contain_text("Farneback")
    expect(stats).to_contain_text("384×288 px")
    gallery = page.locator("#flow-gallery")
    expect(gallery.locator("img")).to_have_count(8)
    files = page.locator("#flow-files")
    expect(files.get_by_role("row").filter(has_text="dis-medium")).to_have_count(2)
    expect(files).to_contain_text(".flo")
    page.screenshot(path=str(ARTIFACTS / "flow.png"), full_page=True)


def test_video_example(page: Page) -> None:
    tab = page.locator("#tab-flow")
    tab.get_by_role("tab", name="Video").click()
    tab.locator("#flow-video-examples").get_by_role("button").first.click()
    tab.get_by_role("button", name="Compute video flow", exact=True).click()
    expect(page.locator("#flow-video-summary")).to_contain_text("15 frame pairs")
    page.screenshot(path=str(ARTIFACTS / "flow-video.png"), full_page=True)
