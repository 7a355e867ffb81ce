"""A person in Chromium: open the app, upload an example, classify, read the labels."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def test_tiny_banner_and_where_models_run_are_shown(page: Page) -> None:
    expect(page.locator("#tiny-banner")).to_contain_text("random weights")
    expect(page.get_by_text("Models run on CPU")).to_contain_text("float32, torch 2.")
    page.get_by_role("tab", name="Visual chat").click()  # filled on page load too: no torch at start
    expect(page.locator("#chat-notice")).to_contain_text("on the CPU needs about 28 GB of RAM in float32")


def test_upload_classify_and_read_labels(page: Page) -> None:
    page.get_by_role("tab", name="Classify").click()
    tab = page.locator("#tab-classify")
    tab.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / "chelsea.jpg"))
    expect(tab.locator("img[alt]").first).to_be_visible()
    tab.get_by_role("button", name="Classify", exact=True).click()

    cards = tab.locator(".model-card")
    expect(cards).to_have_count(3)
    expect(cards.nth(0)).to_contain_text("BEiT-base (ImageNet-1k)")
    expect(cards.nth(1)).to_contain_text("LeViT-128S")
    expect(cards.nth(2)).to_contain_text("Perceiver (conv)")
    expect(cards.nth(0)).to_contain_text("ms on cpu")
    summary = page.locator("#classify-summary")
    expect(summary).to_contain_text("'")

    from core.classify import classify
    from core.images import load_image
    from core.models import get_cache

    expected = classify(load_image(ROOT / "assets" / "chelsea.jpg"), ["beit-base-224"], 5, cache=get_cache())
    top_label = expected.results[0].predictions[0].label
    expect(cards.nth(0)).to_contain_text(top_label)
    page.screenshot(path=str(ARTIFACTS / "classify.png"), full_page=True)


def test_bad_upload_shows_a_message_then_the_next_request_works(page: Page, tmp_path: Path) -> None:
    tab = page.locator("#tab-classify")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    tab.locator("input[type=file]").first.set_input_files(str(bad))
    tab.get_by_role("button", name="Classify", exact=True).click()
    message = page.get_by_role("status").filter(has_text="not an image in a supported format")
    expect(message.first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "classify-bad-upload.png"), full_page=True)

    tab.locator("img[src*='coffee']").first.click()
    expect(tab.locator("img[src*='coffee']")).to_have_count(2)
    tab.get_by_role("button", name="Classify", exact=True).click()
    expect(page.locator("#classify-summary")).not_to_be_empty()
    expect(tab.locator(".model-card")).to_have_count(3)
