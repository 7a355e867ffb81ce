"""A person in Chromium on the Video tab: pick the example clip, move the window to 1 s, autoencode, and
read the labels and the PSNR off the page. Expected values are computed before the clicks, on the same
tiny model."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from core.video_autoencode import video_autoencode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "video_tones.mp4"
ARTIFACTS = ROOT / "artifacts"


def test_example_clip_labels_and_psnr(page: Page, tmp_path: Path) -> None:
    expected = video_autoencode(EXAMPLE, 1.0, "none", out_dir=tmp_path).info
    page.get_by_role("tab", name="Video", exact=True).click()
    tab = page.locator("#tab-video")
    tab.locator("#video-examples").get_by_role("button").first.click()
    expect(tab.locator("video").first).to_be_visible()
    start = tab.locator("#video-start input[type=number]")
    expect(start).to_be_enabled()
    start.fill("1")
    start.press("Enter")
    tab.get_by_role("button", name="Autoencode", exact=True).click()

    summary = tab.locator("#video-summary")
    expect(summary).to_contain_text(f"Mean PSNR {expected['mean_psnr']:.2f} dB", timeout=240_000)
    expect(summary).to_contain_text(f"sound SNR {expected['audio_snr_db']:.2f} dB")
    expect(summary).to_contain_text("window 1.00–1.64 s")
    labels = tab.locator("#video-labels")
    for item in expected["labels"]:
        expect(labels).to_contain_text(item["label"])
    assert tab.locator("audio").count() >= 2  # the two players (each may hold more than one element)
    expect(tab.locator("img[src*='video-figure']")).to_have_count(3)
    page.screenshot(path=str(ARTIFACTS / "video.png"), full_page=True)
