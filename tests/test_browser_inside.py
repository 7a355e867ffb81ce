"""A person in Chromium: the Inside tab. Click patches of the example photo to mask them and read BEiT's
predictions; then show where a Perceiver IO model looks."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
WAIT = 60_000
"""ms to wait for what the server computes (loads the tiny models on first use; CI machines are shared)."""


def test_click_patches_and_predict_them(page: Page, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Inside", exact=True).click()
    tab = page.locator("#tab-inside-masked")
    tab.locator("img[src*='chelsea']").first.click()
    picker = page.locator("#inside-picker img")
    expect(picker).to_be_visible(timeout=WAIT)
    box = picker.bounding_box()
    assert box is not None
    unshaded = picker.get_attribute("src")
    picker.click(position={"x": 3, "y": 3})  # the top-left patch
    expect(page.locator("#inside-patches textarea")).to_have_value("0", timeout=WAIT)
    expect(picker).not_to_have_attribute("src", unshaded or "", timeout=WAIT)  # redrawn with the patch shaded
    picker.click(position={"x": box["width"] / 2 + 3, "y": box["height"] / 2 + 3})  # patch (7, 7)
    expect(page.locator("#inside-patches textarea")).to_have_value("0, 105", timeout=WAIT)
    expect(tab.get_by_label("patches", exact=True)).to_be_checked(timeout=WAIT)
    tab.get_by_role("button", name="Predict the masked patches").click()

    summary = page.locator("#inside-masked-summary")
    expect(summary).to_contain_text("2 of 196 patches masked", timeout=WAIT)
    expect(summary).to_contain_text("top-1", timeout=WAIT)
    expect(page.locator("#inside-masked-gallery img")).to_have_count(4, timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "inside-masked.png"), full_page=True)

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    tab.locator("input[type=file]").first.set_input_files(str(bad))
    tab.get_by_role("button", name="Predict the masked patches").click()
    expect(page.get_by_role("status").filter(has_text="not an image in a supported format").first).to_be_visible(
        timeout=WAIT
    )


def test_perceiver_attention_over_the_photo(page: Page) -> None:
    page.get_by_role("tab", name="Inside", exact=True).click()
    page.get_by_role("tab", name="Attention", exact=True).click()
    tab = page.locator("#tab-inside-attention")
    tab.locator("img[src*='coffee']").first.click()
    tab.get_by_label("Model").click()
    page.get_by_role("option", name="Perceiver (conv)").click()
    expect(tab.get_by_label("classifier", exact=True)).to_be_visible(timeout=WAIT)
    expect(tab.get_by_label("latents", exact=True)).to_be_checked(timeout=WAIT)
    tab.get_by_role("button", name="Show attention").click()

    summary = page.locator("#inside-attention-summary")
    expect(summary).to_contain_text("Perceiver (conv)", timeout=WAIT)
    expect(summary).to_contain_text("Cross-attention of all", timeout=WAIT)
    expect(page.locator("#inside-overlay img")).to_be_visible(timeout=WAIT)
    expect(page.locator("#inside-heatmap img")).to_be_visible(timeout=WAIT)
    expect(page.locator("#inside-small-maps img")).to_be_visible(timeout=WAIT)
    page.screenshot(path=str(ARTIFACTS / "inside-attention.png"), full_page=True)
