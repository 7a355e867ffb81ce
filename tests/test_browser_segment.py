"""A person segments an example photo in Chromium and reads the legend."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from core.images import load_image
from core.segment import legend_names, segment

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


def test_segment_an_example_and_read_the_legend(page: Page) -> None:
    page.get_by_role("tab", name="Segment").click()
    tab = page.locator("#tab-segment")
    tab.locator("img[src*='coffee']").first.click()
    tab.get_by_label("Model").click()
    page.get_by_role("option", name="BEiT-base UperNet (ADE20K)").click()
    expect(tab.get_by_role("radio", name="semantic")).to_be_checked()
    tab.get_by_role("button", name="Segment", exact=True).click()

    expected = segment(load_image(ROOT / "assets" / "coffee.jpg"), "beit-base-ade-640", "semantic")
    expect(page.locator("#segment-summary")).to_contain_text(f"{len(expected.segments)} segments")
    legend = tab.locator(".legend-item")
    expect(legend).to_have_count(len(expected.segments))
    names = legend_names(expected)
    assert legend.all_inner_texts() == [names[s.id] for s in expected.segments]
    first = expected.segments[0]
    row = tab.get_by_role("row").filter(has_text=first.label).filter(has_text=f"{first.area_percent:.2f}")
    expect(row.first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "segment.png"), full_page=True)


def test_instance_and_panoptic_modes_in_the_browser(page: Page) -> None:
    from core.segment import Thresholds

    photo = load_image(ROOT / "assets" / "chelsea.jpg")
    model = "mask2former-swin-small-coco-panoptic"
    expected = {
        "instance": segment(photo, model, "instance", Thresholds(score=0.0)),
        "panoptic": segment(photo, model, "panoptic", Thresholds(0.0, 0.01, 0.0)),
    }
    page.get_by_role("tab", name="Segment").click()
    tab = page.locator("#tab-segment")
    tab.locator("img[src*='chelsea']").first.click()
    tab.get_by_label("Model").click()
    page.get_by_role("option", name="Mask2Former Swin-S (COCO panoptic)").click()
    for mode, result in expected.items():
        tab.get_by_role("radio", name=mode).check()
        sliders = {"Score threshold": "0", "Mask threshold": "0.01", "Overlap threshold": "0"}
        shown = ["Score threshold"] if mode == "instance" else list(sliders)  # the mode's change shows them
        for label in shown:
            box = tab.get_by_label(label, exact=False).locator("xpath=ancestor::div[contains(@class,'block')][1]")
            number = box.locator("input[type=number]")
            expect(number).to_be_visible()  # not before the mode's change has shown it
            number.fill(sliders[label])
            number.press("Enter")
        tab.get_by_role("button", name="Segment", exact=True).click()
        expect(page.locator("#segment-summary")).to_contain_text(f"{len(result.segments)} segments ({mode})")
        expect(tab.locator(".legend-item")).to_have_count(len(result.segments))
    page.screenshot(path=str(ARTIFACTS / "segment-panoptic.png"), full_page=True)
