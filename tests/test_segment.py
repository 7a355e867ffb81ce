"""Segmentation: drawing with exact pixels, parity with transformers' pipeline, thresholds, downloads."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from core.errors import InputError
from core.images import load_image
from core.models import get_cache
from core.registry import get_spec
from core.render import colour_map, index_png, overlay, palette
from core.segment import (
    Thresholds,
    _post_process,
    annotations,
    legend_names,
    result_from_dict,
    segment,
    work_size,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PANOPTIC = "mask2former-swin-small-coco-panoptic"
SEMANTIC_MODELS = ["beit-base-ade-640", "mask2former-swin-small-ade-semantic", PANOPTIC]
# The tiny models are random: their class scores are low (about 0.05), and Mask2Former's panoptic
# post-processing compares the score-weighted mask probability with the mask threshold, so these
# thresholds are the ones at which the tiny panoptic model yields segments.
OPEN = Thresholds(score=0.0, mask=0.01, overlap=0.0)


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return load_image(ASSETS / "chelsea.jpg")


# --- drawing -----------------------------------------------------------------------------------


def test_palette_starts_black_and_has_distinct_colours() -> None:
    colours = palette()
    assert colours.shape == (256, 3) and colours.dtype == np.uint8
    assert colours[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in colours}) == 256


def test_colour_map_and_overlay_exact_pixels() -> None:
    label_map = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 100, 200]], dtype=np.uint8)
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    assert colour_map(label_map, colours).tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 100, 200], [255, 0, 0]]]
    half = overlay(image, label_map, colours, 0.5)
    assert half[0, 0].tolist() == [100, 100, 100]  # no segment: untouched
    assert half[0, 1].tolist() == [178, 50, 50]  # round(0.5 * 100 + 0.5 * 255) = 177.5 -> 178
    assert half[1, 0].tolist() == [50, 100, 150]
    assert overlay(image, label_map, colours, 0.0).tolist() == image.tolist()
    assert overlay(image, label_map, colours, 1.0)[1, 0].tolist() == [0, 100, 200]
    quarter = overlay(image, label_map, colours, 0.25)
    assert quarter[0, 1].tolist() == [139, 75, 75]  # 0.75 * 100 + 0.25 * 255 = 138.75
    with pytest.raises(ValueError, match="opacity"):
        overlay(image, label_map, colours, 1.5)
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image[:1], label_map, colours, 0.5)


def test_index_png_holds_ids_and_shows_colours() -> None:
    label_map = np.array([[0, 1, 2], [3, 3, 0]], dtype=np.uint8)
    buffer = io.BytesIO()
    index_png(label_map, palette()).save(buffer, format="PNG")
    reread = Image.open(io.BytesIO(buffer.getvalue()))
    assert reread.mode == "P"
    assert np.array(reread).tolist() == label_map.tolist()
    assert np.array(reread.convert("RGB"))[0, 1].tolist() == palette()[1].tolist()


def test_work_size_bounds_the_longer_side() -> None:
    assert work_size(3000, 4000, 1280) == (960, 1280)
    assert work_size(300, 451, 1280) == (300, 451)
    assert work_size(10000, 10, 1000) == (1000, 1)


# --- parity with transformers.pipeline("image-segmentation") ------------------------------------


def _pipeline(key: str) -> object:
    loaded, _ = get_cache().get(key)
    return pipeline("image-segmentation", model=loaded.model, image_processor=loaded.processor)


@pytest.mark.parametrize("key", SEMANTIC_MODELS)
@pytest.mark.parametrize("photo", ["chelsea.jpg", "coffee.jpg"])
def test_semantic_equals_pipeline(key: str, photo: str) -> None:
    image = load_image(ASSETS / photo)
    ours = segment(image, key, "semantic")
    theirs = _pipeline(key)(image, subtask="semantic")
    assert sorted(s.label for s in ours.segments) == sorted(t["label"] for t in theirs)
    by_label = {s.label: s for s in ours.segments}
    for entry in theirs:
        assert np.array_equal(ours.label_map == by_label[entry["label"]].id, np.array(entry["mask"]) == 255)
    assert sum(s.area for s in ours.segments) == image.width * image.height
    assert sum(s.area_percent for s in ours.segments) == pytest.approx(100.0, abs=1e-3)


@pytest.mark.parametrize("thresholds", [OPEN, Thresholds(0.0, 0.05, 0.5), Thresholds(0.06, 0.01, 0.0)])
def test_panoptic_equals_pipeline(cat: Image.Image, thresholds: Thresholds) -> None:
    ours = segment(cat, PANOPTIC, "panoptic", thresholds, fuse_stuff=False)
    theirs = _pipeline(PANOPTIC)(
        cat,
        subtask="panoptic",
        threshold=thresholds.score,
        mask_threshold=thresholds.mask,
        overlap_mask_area_threshold=thresholds.overlap,
    )
    assert ours.segments, "the thresholds should let the tiny model produce segments"
    assert len(ours.segments) == len(theirs)
    remaining = list(theirs)
    for segment_ in ours.segments:
        mask = ours.label_map == segment_.id
        match = next(t for t in remaining if np.array_equal(np.array(t["mask"]) == 255, mask))
        assert (match["label"], match["score"]) == (segment_.label, segment_.score)
        remaining.remove(match)


# --- thresholds do what their labels say --------------------------------------------------------


def _signature(result: object) -> tuple:
    return len(result.segments), result.label_map.tobytes()


def test_score_threshold_drops_less_certain_segments(cat: Image.Image) -> None:
    loose = segment(cat, PANOPTIC, "panoptic", OPEN)
    strict = segment(cat, PANOPTIC, "panoptic", Thresholds(0.06, 0.01, 0.0))
    assert 0 < len(strict.segments) < len(loose.segments)
    assert min(s.score for s in strict.segments) >= 0.06
    instance_loose = segment(cat, "mask2former-swin-small-coco-instance", "instance", Thresholds(score=0.0))
    instance_strict = segment(cat, "mask2former-swin-small-coco-instance", "instance", Thresholds(score=0.05))
    assert len(instance_strict.segments) < len(instance_loose.segments)
    assert all(s.score >= 0.05 for s in instance_strict.segments)


def test_mask_threshold_changes_the_masks(cat: Image.Image) -> None:
    low = segment(cat, PANOPTIC, "panoptic", Thresholds(0.0, 0.01, 0.5))
    high = segment(cat, PANOPTIC, "panoptic", Thresholds(0.0, 0.05, 0.5))
    assert _signature(low) != _signature(high)


def test_overlap_threshold_drops_fragmented_segments(cat: Image.Image) -> None:
    counts = [len(segment(cat, PANOPTIC, "panoptic", Thresholds(0.0, 0.05, o)).segments) for o in (0.0, 0.5, 0.8)]
    assert counts[0] > counts[1] > counts[2]


def test_fuse_stuff_merges_regions_of_a_stuff_class() -> None:
    loaded, _ = get_cache().get(PANOPTIC)
    spec = get_spec(PANOPTIC)
    sky = loaded.model.config.label2id["sky-other-merged"]
    person = loaded.model.config.label2id["person"]
    assert sky in spec.stuff_label_ids and person not in spec.stuff_label_ids
    num_labels = loaded.model.config.num_labels
    logits = torch.full((1, 4, num_labels + 1), -10.0)
    for query, label in enumerate([sky, sky, person, person]):
        logits[0, query, label] = 10.0
    masks = torch.full((1, 4, 96, 96), -10.0)
    masks[0, 0, :, :24] = masks[0, 1, :, 72:] = masks[0, 2, :24, 30:60] = masks[0, 3, 72:, 30:60] = 10.0
    outputs = SimpleNamespace(class_queries_logits=logits, masks_queries_logits=masks)
    fused_map, fused = _post_process(
        loaded.processor, outputs, "panoptic", (96, 96), Thresholds(), set(spec.stuff_label_ids)
    )
    plain_map, plain = _post_process(loaded.processor, outputs, "panoptic", (96, 96), Thresholds(), set())
    assert [s["label_id"] for s in plain] == [sky, sky, person, person]
    assert len({s["id"] for s in fused}) == 3 and len({s["id"] for s in plain}) == 4
    assert fused_map[0, 0] == fused_map[0, 95]
    assert plain_map[0, 0] != plain_map[0, 95]


# --- results, downloads, validation -------------------------------------------------------------


def test_json_and_png_downloads_read_back_to_the_same_segments(cat: Image.Image) -> None:
    result = segment(cat, "beit-base-ade-640", "semantic")
    data = json.loads(result.to_json())
    ids = np.array(Image.open(io.BytesIO(result.label_map_png())))
    assert ids.shape == (cat.height, cat.width)
    assert data["image_size"] == [cat.width, cat.height]
    assert [s["id"] for s in data["segments"]] == list(range(1, len(data["segments"]) + 1))
    areas = [s["area"] for s in data["segments"]]
    assert areas == sorted(areas, reverse=True)
    for item in data["segments"]:
        mask = ids == item["id"]
        rows, cols = np.nonzero(mask)
        assert item["area"] == int(mask.sum())
        assert item["bbox"] == [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
    again = result_from_dict(data, ids)
    assert again.segments == result.segments


def test_large_images_are_segmented_at_a_bounded_size_and_returned_full_size(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    fresh_settings.setenv("PLAYGROUND_SEGMENT_MAX_SIDE", "128")
    image = load_image(ASSETS / "coffee.jpg")
    result = segment(image, "beit-base-ade-640", "semantic")
    assert result.label_map.shape == (image.height, image.width)
    assert sum(s.area for s in result.segments) == image.width * image.height


def test_segments_are_numbered_names_and_annotations_scale_with_opacity(cat: Image.Image) -> None:
    result = segment(cat, "mask2former-swin-small-coco-instance", "instance", Thresholds(score=0.0))
    names = legend_names(result)
    assert len(set(names.values())) == len(result.segments)
    photo, masks, colours = annotations(result, cat, 0.4, max_side=200)
    assert photo.shape[:2] == work_size(cat.height, cat.width, 200)
    assert {name for _, name in masks} == set(colours) == set(names.values())
    assert all(set(np.unique(mask)) <= {0.0, np.float32(0.4)} for mask, _ in masks)


@pytest.mark.parametrize(
    ("key", "mode", "thresholds", "message"),
    [
        ("beit-base-ade-640", "panoptic", Thresholds(), "does semantic segmentation, not 'panoptic'"),
        ("no-such-model", "semantic", Thresholds(), "Unknown model"),
        ("levit-128S", "semantic", Thresholds(), "Unknown model"),
        (PANOPTIC, "panoptic", Thresholds(score=1.5), "score threshold must be from 0 to 1"),
        (PANOPTIC, "panoptic", Thresholds(mask=float("nan")), "mask threshold must be a number"),
        (PANOPTIC, "panoptic", Thresholds(overlap=True), "overlap threshold must be a number"),
    ],
)
def test_bad_requests_are_refused(cat: Image.Image, key: str, mode: str, thresholds: Thresholds, message: str) -> None:
    with pytest.raises(InputError, match=message):
        segment(cat, key, mode, thresholds)
