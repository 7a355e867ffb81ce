"""A person in Chromium on the Caption tab: caption an example (greedy, beam, sampling), read the text,
caption a batch, read a line of text with TrOCR after cropping to it.

Expected values are computed before the click: the first use of a model class from two threads at
once can trip transformers' lazy imports."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from core.caption import Decoding, caption, caption_batch, crop_band
from core.images import load_image

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "artifacts"


def tab(page: Page) -> Locator:
    return page.locator("#tab-caption")


def caption_text(page: Page) -> Locator:
    return tab(page).locator("#caption-text textarea")


def run_caption(page: Page) -> None:
    tab(page).get_by_role("button", name="Caption", exact=True).click()


def test_caption_an_example_greedy(page: Page) -> None:
    expected = caption(load_image(ASSETS / "chelsea.jpg"), "vit-gpt2", Decoding()).caption
    page.get_by_role("tab", name="Caption").click()
    tab(page).locator("img[src*='chelsea']").first.click()
    expect(tab(page).locator("img[src*='chelsea']")).to_have_count(2)
    run_caption(page)
    expect(caption_text(page)).to_have_value(expected)
    expect(tab(page).locator("#caption-timing")).to_contain_text("ms generating on cpu")
    expect(tab(page).locator("#caption-candidates")).to_be_hidden()


def test_beam_search_shows_the_n_best_table(page: Page) -> None:
    expected = caption(load_image(ASSETS / "chelsea.jpg"), "vit-gpt2", Decoding("beam", num_beams=4, n_best=3))
    tab(page).get_by_label("Beam search").check()
    expect(tab(page).get_by_text("cannot stream word by word")).to_be_visible()
    run_caption(page)
    expect(caption_text(page)).to_have_value(expected.caption)
    table = tab(page).locator("#caption-candidates")
    expect(table).to_be_visible()
    for candidate in expected.candidates:
        expect(table).to_contain_text(candidate.text)
        expect(table).to_contain_text(f"{candidate.score:.4f}".rstrip("0"))
    page.screenshot(path=str(ARTIFACTS / "caption.png"), full_page=True)


def test_seeded_sampling(page: Page) -> None:
    expected = caption(load_image(ASSETS / "chelsea.jpg"), "vit-gpt2", Decoding("sampling", seed=7)).caption
    tab(page).get_by_label("Sampling").check()
    seed = tab(page).get_by_label("Seed")
    seed.fill("7")
    seed.press("Enter")
    run_caption(page)
    expect(caption_text(page)).to_have_value(expected)
    expect(tab(page).locator("#caption-candidates")).to_be_hidden()


def test_several_images_in_one_batch(page: Page) -> None:
    names = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg"]
    expected = caption_batch([load_image(ASSETS / name) for name in names], "vit-gpt2", Decoding())
    tab(page).get_by_label("Greedy").check()
    tab(page).get_by_text("Several images").click()
    batch = tab(page).locator("#caption-batch")
    batch.get_by_text("Example batch").scroll_into_view_if_needed()
    batch.locator(".gallery-item, button:has-text('chelsea.jpg')").first.click()
    batch.get_by_role("button", name="Caption all").click()
    gallery = batch.locator("#caption-gallery")
    expect(gallery.locator("img")).to_have_count(4)
    for candidate in expected.captions:
        expect(gallery).to_contain_text(candidate.text or "(empty)")
    expect(batch).to_contain_text("4 images in one batch")
    page.screenshot(path=str(ARTIFACTS / "caption-batch.png"), full_page=True)


def test_trocr_reads_one_line_after_cropping(page: Page) -> None:
    line = crop_band(load_image(ASSETS / "text-lines.png"), 33, 63)
    expected = caption(line, "trocr-base-printed", Decoding()).caption
    note = tab(page).locator("#caption-one-line")
    expect(note).to_be_hidden()
    tab(page).get_by_label("TrOCR-base (printed line)").check()
    expect(note).to_contain_text("reads ONE line of text")
    tab(page).locator("img[src*='text-lines']").first.click()
    for label, value in [("Top of the line (% of height)", "33"), ("Bottom of the line (% of height)", "63")]:
        box = tab(page).get_by_label(f"number input for {label}")
        box.fill(value)
        box.press("Enter")
    tab(page).get_by_role("button", name="Crop to this band").click()
    expect(tab(page).locator("img[src*='text-lines']")).to_have_count(1)  # the example thumbnail only
    cropped = tab(page).locator("[data-testid=image] img").first
    expect(cropped).to_be_visible()
    size = cropped.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [line.width, line.height] == [720, 69]  # rows 75 to 143 of 228: the second line
    run_caption(page)
    expect(caption_text(page)).to_have_value(expected)
    page.screenshot(path=str(ARTIFACTS / "caption-trocr.png"), full_page=True)
