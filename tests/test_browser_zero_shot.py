"""A person in Chromium on Classify > Zero-shot: type labels for a photo and read the bars, then search the
example photos by text and ask again (the photos' embeddings come from the cache).

Expected values are computed before the clicks, on the same tiny model."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from core import zero_shot as zs
from core.images import load_image

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "artifacts"
LABELS = "una mela, un gatto, un'automobile"


def tab(page: Page) -> Locator:
    return page.locator("#tab-classify-zero-shot")


def test_type_labels_and_read_the_bars(page: Page) -> None:
    expected = zs.zero_shot(load_image(ASSETS / "chelsea.jpg"), LABELS, embeddings=zs.EmbeddingCache())
    page.get_by_role("tab", name="Classify").click()
    page.get_by_role("tab", name="Zero-shot").click()
    expect(tab(page).locator("#zero-shot-italian")).to_contain_text("The text side reads Italian")
    tab(page).locator("input[type=file]").first.set_input_files(str(ASSETS / "chelsea.jpg"))
    expect(tab(page).locator("img[alt]").first).to_be_visible()
    tab(page).locator("#zero-shot-labels textarea").fill(LABELS)
    tab(page).get_by_role("button", name="Score the labels").click()

    bars = tab(page).locator("#zero-shot-bars")
    expect(bars).to_contain_text(expected.scores[0].label)  # the heading: the most probable label
    for score in expected.scores:
        expect(bars).to_contain_text(score.label)
        expect(bars).to_contain_text(f"{round(score.probability * 100)}%")
    expect(tab(page).locator("#zero-shot-table")).to_contain_text(f"{expected.scores[0].cosine:.4f}"[:6])
    summary = tab(page).locator("#zero-shot-summary")
    expect(summary).to_contain_text("text encoder")  # and the image encoder, unless an earlier test cached the photo
    expect(summary).to_contain_text("softmax(cosine × 2.72")
    page.screenshot(path=str(ARTIFACTS / "zero-shot.png"), full_page=True)

    tab(page).locator("#zero-shot-labels textarea").fill("un gatto")  # one label: 100%, with a note
    tab(page).get_by_role("button", name="Score the labels").click()
    expect(summary).to_contain_text("a softmax over a single label means nothing")
    expect(summary).to_contain_text("only the text encoder ran")
    expect(bars).to_contain_text("100%")


def test_search_the_example_photos_by_text(page: Page) -> None:
    tab(page).get_by_role("tab", name="Search by text").click()
    search = page.locator("#tab-zero-shot-search")
    search.get_by_text("Example photos").first.scroll_into_view_if_needed()
    search.locator(".gallery-item, button:has-text('chelsea.jpg')").first.click()
    search.locator("#zero-shot-query textarea").fill("un gatto")
    search.get_by_role("button", name="Search", exact=True).click()
    gallery = search.locator("#zero-shot-gallery")
    expect(gallery.locator("img")).to_have_count(4)
    summary = search.locator("#zero-shot-search-summary")
    expect(summary).to_contain_text("text encoder")
    search.locator("#zero-shot-query textarea").fill("una tazza di caffè")
    search.get_by_role("button", name="Search", exact=True).click()
    expect(summary).to_contain_text("All 4 photo embeddings from the cache: only the text encoder ran")
    expect(gallery).to_contain_text("#1")
    page.screenshot(path=str(ARTIFACTS / "zero-shot-search.png"), full_page=True)
