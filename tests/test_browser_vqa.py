"""A person in Chromium on the Visual chat tab's "Quick answers (VisualBERT)" sub-tab: upload a photo,
ask, read the answers, lower the threshold and read the drawn regions; a second question about the same
photo comes from the region cache; then "Ask both" puts ViP-LLaVA's and VisualBERT's answers side by side.

Expected values are computed in this process before the clicks (the app runs here too, so the region
cache is shared: the page's answer then reads the cached regions, as the timings say)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from core.chat import ChatOptions, chat
from core.images import load_image
from core.vqa import ask, visible_regions

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "artifacts"


def tab(page: Page) -> Locator:
    return page.locator("#tab-chat")


def set_slider(slider: Locator, value: float) -> None:
    number = slider.locator("input[type=number]")
    number.fill(str(value))
    number.press("Enter")


def test_ask_visualbert_and_read_answers_and_regions(page: Page) -> None:
    page.get_by_role("tab", name="Visual chat").click()
    page.get_by_role("tab", name="Quick answers (VisualBERT)").click()
    quick = page.locator("#chat-vqa")
    expect(quick.locator("#vqa-limits")).to_contain_text("46%")
    question = "What animal is this?"
    expected = ask(load_image(ASSETS / "chelsea.jpg"), question, 5).to_dict()

    quick.locator("input[type=file]").first.set_input_files(str(ASSETS / "chelsea.jpg"))
    expect(quick.locator("#vqa-photo img")).to_be_visible()
    quick.locator("#vqa-question textarea").fill(question)
    quick.get_by_role("button", name="Answer", exact=True).click()

    answers = quick.locator("#vqa-answers")
    expect(answers).to_contain_text(expected["answers"][0]["answer"], timeout=120_000)
    expect(quick.locator("#vqa-timing")).to_contain_text("regions from the cache (the detector did not run)")
    expect(quick.locator("#vqa-regions img")).to_be_visible()
    set_slider(quick.locator("#vqa-threshold"), 0)
    shown = visible_regions(expected["regions"], 0.0, 10)
    expect(quick.locator("#vqa-shown")).to_contain_text(f"{len(shown)} of the {len(expected['regions'])} regions")
    grid = quick.locator("#vqa-table [role=grid]")
    expect(grid).to_have_attribute("aria-rowcount", str(len(shown) + 1))  # and the header row
    first_row = quick.locator('#vqa-table [role=row][aria-rowindex="2"]')
    expect(first_row).to_contain_text(f"{shown[0]['attribute']} {shown[0]['object']}")
    set_slider(quick.locator("#vqa-count"), 3)
    expect(grid).to_have_attribute("aria-rowcount", "4")
    page.screenshot(path=str(ARTIFACTS / "chat-vqa.png"), full_page=True)

    quick.locator("#vqa-question textarea").fill("   ")
    quick.get_by_role("button", name="Answer", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Type a question about the photo").first).to_be_visible()


def test_ask_both_side_by_side(page: Page) -> None:
    page.get_by_role("tab", name="ViP-LLaVA", exact=True).click()
    tab(page).locator("#chat-vip-llava input[type=file]").first.set_input_files(str(ASSETS / "coffee.jpg"))
    expect(tab(page).locator("#chat-canvas img")).to_be_visible()
    question = "What is on the table?"
    photo = load_image(ASSETS / "coffee.jpg")
    vip = chat(photo, [], question, [], ChatOptions())
    visualbert = ask(photo, question, 5).to_dict()

    page.get_by_role("tab", name="Ask both").click()
    both = page.locator("#chat-both")
    both.locator("#both-question textarea").fill(question)
    both.get_by_role("button", name="Ask both").click()
    expect(both.locator("#both-vqa")).to_contain_text(visualbert["answers"][0]["answer"], timeout=120_000)
    expect(both.locator("#both-vip")).to_contain_text(vip.answer.strip()[:40], timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "chat-ask-both.png"), full_page=True)
