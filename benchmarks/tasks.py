"""Classification, segmentation and captioning: the app's core paths against the plain transformers
way on the same loaded model (`pipeline(...)` for classification and segmentation, the model card's
processor -> `generate` -> `batch_decode` for captions), on full-size random-weight checkpoints
loaded through the app's own loader (benchmarks/full_size.py).

Each row also says what the first call cost to load the model from a local disk, and whether the two
ways agree on the answer (same labels, same segments, same captions).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks.common import Row, device_label, measure_pair
from benchmarks.full_size import local_loader
from core import caption as core_caption
from core import classify as core_classify
from core import segment as core_segment
from core.models import LoadedModel, ModelCache
from core.registry import get_spec
from core.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTO_SIZE = (1600, 1200)
"""A phone-sized upload (1.9 MP): what users bring, and where post-processing at full size costs."""


def photo(name: str = "chelsea.jpg", size: tuple[int, int] = PHOTO_SIZE) -> Image.Image:
    return Image.open(ASSETS / name).convert("RGB").resize(size, Image.Resampling.BICUBIC)


class Bench:
    """Loads full-size checkpoints once into one ModelCache and times rows against them."""

    def __init__(self, folder: Path, repeat: int) -> None:
        self.cache = ModelCache(budget_bytes=2**62, loader=local_loader(folder))
        self.repeat = repeat
        self.load_ms: dict[str, float] = {}

    def get(self, key: str) -> LoadedModel:
        loaded, was_loaded = self.cache.get(key)
        if was_loaded:
            self.load_ms[key] = loaded.load_seconds * 1000
        return loaded

    def row(
        self,
        task: str,
        keys: list[str],
        batch: str,
        ours: Callable[[], Any],
        reference: Callable[[], Any],
        reference_name: str,
        agree: Callable[[Any, Any], str],
    ) -> Row:
        loaded = [self.get(key) for key in keys]
        results: dict[str, Any] = {}

        def run_ours() -> None:
            results["ours"] = ours()

        def run_reference() -> None:
            results["reference"] = reference()

        ours_s, reference_s, ours_peak, reference_peak = measure_pair(
            run_ours, run_reference, self.repeat, loaded[0].device
        )
        load = ", ".join(f"{self.load_ms[k] / 1000:.1f} s" for k in keys if k in self.load_ms)
        notes = [agree(results["ours"], results["reference"])]
        if load:
            notes.append(f"first call loads from disk: {load}")
        for key in keys:
            self.load_ms.pop(key, None)  # reported once
        return Row(
            task=task,
            model=" + ".join(get_spec(k).name for k in keys) + " (random weights)",
            device=device_label(loaded[0].device, loaded[0].dtype),
            batch=batch,
            ours_s=ours_s,
            reference_s=reference_s,
            reference=reference_name,
            ours_peak_mb=ours_peak,
            reference_peak_mb=reference_peak,
            note="; ".join(n for n in notes if n),
            runs=self.repeat,
        )


# --- classification -------------------------------------------------------------------------------


def _classification_pipeline(loaded: LoadedModel) -> Any:
    from transformers import pipeline

    return pipeline("image-classification", model=loaded.model, image_processor=loaded.processor)


def _labels_agree(ours: core_classify.ClassifyResult, reference: list[list[dict[str, Any]]]) -> str:
    ours_labels = [[p.label for p in r.predictions] for r in ours.results]
    reference_labels = [[p["label"] for p in preds] for preds in reference]
    return "same top-5 labels" if ours_labels == reference_labels else "TOP-5 LABELS DIFFER"


def classification_rows(bench: Bench, image: Image.Image) -> list[Row]:
    rows = []
    groups = [
        ["beit-base-224"],
        ["levit-128S"],
        ["levit-384"],
        ["perceiver-learned"],
        ["perceiver-conv"],
        ["beit-base-224", "levit-128S", "levit-384", "perceiver-learned"],
    ]
    for keys in groups:
        pipes = [_classification_pipeline(bench.get(key)) for key in keys]
        rows.append(
            bench.row(
                "classify" if len(keys) == 1 else f"classify, {len(keys)} models in one call",
                keys,
                f"1 image {image.width}x{image.height}",
                lambda keys=keys: core_classify.classify(image, keys, 5, cache=bench.cache),
                lambda pipes=pipes: [pipe(image, top_k=5) for pipe in pipes],
                'pipeline("image-classification")' + (" per model" if len(keys) > 1 else ""),
                _labels_agree,
            )
        )
    return rows


# --- segmentation ---------------------------------------------------------------------------------


def _segments_agree(ours: core_segment.SegmentationResult, reference: list[dict[str, Any]]) -> str:
    ours_labels = sorted(s.label for s in ours.segments)
    reference_labels = sorted(r["label"] for r in reference)
    if ours_labels == reference_labels:
        return f"{len(ours.segments)} / {len(reference)} segments, same labels"
    side = get_settings().segment_max_side
    return (
        f"{len(ours.segments)} / {len(reference)} segments: ours computes masks at {side} px "
        "(PLAYGROUND_SEGMENT_MAX_SIDE), so specks of a few pixels can vanish"
    )


def segmentation_rows(bench: Bench, image: Image.Image) -> list[Row]:
    from transformers import pipeline

    rows = []
    thresholds = core_segment.Thresholds()
    cases = [
        ("beit-base-ade-640", "semantic"),
        ("mask2former-swin-small-coco-panoptic", "panoptic"),
        ("mask2former-swin-small-coco-instance", "instance"),
    ]
    for key, mode in cases:
        loaded = bench.get(key)
        pipe = pipeline("image-segmentation", model=loaded.model, image_processor=loaded.processor)
        extra = (
            {}
            if mode == "semantic"
            else {
                "threshold": thresholds.score,
                "mask_threshold": thresholds.mask,
                "overlap_mask_area_threshold": thresholds.overlap,
            }
        )
        rows.append(
            bench.row(
                f"segment {mode}",
                [key],
                f"1 image {image.width}x{image.height}",
                lambda key=key, mode=mode: core_segment.segment(
                    image, key, mode, thresholds, fuse_stuff=False, cache=bench.cache
                ),
                lambda pipe=pipe, mode=mode, extra=extra: pipe(image, subtask=mode, **extra),
                f'pipeline("image-segmentation", subtask="{mode}")',
                _segments_agree,
            )
        )
    return rows


# --- captioning -----------------------------------------------------------------------------------


def _model_card_captions(loaded: LoadedModel, images: list[Image.Image], **generate: Any) -> list[str]:
    """nlpconnect/vit-gpt2-image-captioning's model card: processor -> generate -> batch_decode."""
    pixels = loaded.processor(images=images, return_tensors="pt").pixel_values.to(loaded.device, loaded.dtype)
    with torch.no_grad():
        ids = loaded.model.generate(pixel_values=pixels, **generate)
    return [text.strip() for text in loaded.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def _captions_agree(ours: Any, reference: list[str]) -> str:
    texts = [c.text for c in (ours.captions if hasattr(ours, "captions") else ours.candidates[:1])]
    return "same captions" if texts == reference else "CAPTIONS DIFFER"


def caption_rows(bench: Bench, images: list[Image.Image]) -> list[Row]:
    key = "vit-gpt2"
    loaded = bench.get(key)
    greedy = core_caption.Decoding(mode="greedy", max_new_tokens=16)
    beam = core_caption.Decoding(mode="beam", max_new_tokens=16, num_beams=4, n_best=1)
    size = f"{images[0].width}x{images[0].height}"
    return [
        bench.row(
            "caption, greedy",
            [key],
            f"1 image {size}, 16 tokens",
            lambda: core_caption.caption(images[0], key, greedy, cache=bench.cache),
            lambda: _model_card_captions(loaded, images[:1], max_new_tokens=16),
            "processor + model.generate + batch_decode",
            _captions_agree,
        ),
        bench.row(
            "caption, beam search",
            [key],
            f"1 image {size}, 4 beams, 16 tokens",
            lambda: core_caption.caption(images[0], key, beam, cache=bench.cache),
            lambda: _model_card_captions(loaded, images[:1], max_new_tokens=16, num_beams=4),
            "processor + model.generate(num_beams=4) + batch_decode",
            _captions_agree,
        ),
        bench.row(
            "caption, gallery",
            [key],
            f"{len(images)} images {size}, greedy, 16 tokens",
            lambda: core_caption.caption_batch(images, key, greedy, cache=bench.cache),
            lambda: [_model_card_captions(loaded, [image], max_new_tokens=16)[0] for image in images],
            "processor + model.generate + batch_decode, one image per call",
            _captions_agree,
        ),
    ]


def run(repeat: int, only: set[str]) -> dict[str, list[Row]]:
    """{"classify": rows, "segment": rows, "caption": rows} for the benchmarks in `only`."""
    image = photo()
    results: dict[str, list[Row]] = {}
    with tempfile.TemporaryDirectory(prefix="playground-bench-") as folder:
        bench = Bench(Path(folder), repeat)
        if "classify" in only:
            results["classify"] = classification_rows(bench, image)
            bench.cache.clear()
        if "segment" in only:
            results["segment"] = segmentation_rows(bench, image)
            bench.cache.clear()
        if "caption" in only:
            names = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg"]
            images = [photo(name, (640, 480)) for name in names] * 2
            results["caption"] = caption_rows(bench, images)
            bench.cache.clear()
    return results
