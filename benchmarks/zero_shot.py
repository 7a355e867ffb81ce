"""Zero-shot labels on clip-italian's full-size architecture (CLIP ViT-B/32 + BERT-base, random weights):
the app's core (the photos through the image encoder in batches, the labels through the text encoder
once, image embeddings cached by content) against the plain way, one processor + model call per photo
(`processor(text=prompts, images=photo)` -> `model(...)` -> softmax of `logits_per_image`).

Rows: 16 photos x 10 labels asked the first time (no cached embeddings), the same photos asked again with
10 other labels (only the text encoder runs), and a search by text over the same photos.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks.common import Row, device_label, measure_pair
from benchmarks.full_size import local_loader
from core import zero_shot as core_zero_shot
from core.models import LoadedModel, ModelCache

ASSETS = Path(__file__).resolve().parent.parent / "assets"
KEY = "clip-italian"
NAMES = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
LABELS = [
    "un gatto",
    "un cane",
    "una tazza di caffè",
    "un astronauta",
    "una donna in uniforme",
    "una pizza",
    "una bicicletta",
    "un paesaggio di montagna",
    "una barca a vela",
    "un mazzo di fiori",
]
OTHER_LABELS = [
    "un animale",
    "una bevanda calda",
    "lo spazio",
    "un ritratto",
    "una bandiera",
    "un piatto di pasta",
    "una strada di città",
    "il mare",
    "un libro",
    "una sedia",
]
QUERY = "un gatto sdraiato su una coperta"
TEMPLATE = core_zero_shot.DEFAULT_TEMPLATE


def sixteen_photos(size: tuple[int, int] = (640, 480)) -> list[Image.Image]:
    """16 different photos (four crops of each example photo, at `size`), so that none shares a cache key."""
    photos = []
    for name in NAMES:
        image = Image.open(ASSETS / name).convert("RGB")
        width, height = image.size
        for left, top in ((0, 0), (0.1, 0), (0, 0.1), (0.1, 0.1)):
            box = (int(left * width), int(top * height), int((left + 0.9) * width), int((top + 0.9) * height))
            photos.append(image.crop(box).resize(size, Image.Resampling.BICUBIC))
    return photos


def one_call_per_photo(loaded: LoadedModel, photos: list[Image.Image], texts: list[str]) -> torch.Tensor:
    """The plain way: one processor + model call per photo; probabilities (photos, texts)."""
    rows = []
    for photo in photos:
        inputs = loaded.processor(text=texts, images=photo, padding=True, return_tensors="pt")
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
        with torch.inference_mode():
            logits = loaded.model(**inputs.to(loaded.device)).logits_per_image
        rows.append(logits.float().softmax(dim=-1)[0].cpu())
    return torch.stack(rows)


def _probabilities(result: core_zero_shot.BatchResult, labels: list[str]) -> torch.Tensor:
    return torch.tensor(
        [[{s.label: s.probability for s in scores}[label] for label in labels] for scores in result.scores]
    )


def _agree(labels: list[str]) -> Any:
    def agree(ours: core_zero_shot.BatchResult, reference: torch.Tensor) -> str:
        probabilities = _probabilities(ours, labels)
        same_top = int((probabilities.argmax(dim=1) == reference.argmax(dim=1)).sum())
        return (
            f"same top label for {same_top}/{len(reference)} photos, "
            f"max probability difference {float((probabilities - reference).abs().max()):.1e}"
        )

    return agree


def _search_agree(ours: core_zero_shot.SearchResult, reference: torch.Tensor) -> str:
    order = sorted(range(len(reference)), key=lambda i: -float(reference[i]))
    same = [m.index for m in ours.matches] == order[: len(ours.matches)]
    return "same ranking" if same else "RANKING DIFFERS"


def run(repeat: int) -> list[Row]:
    photos = sixteen_photos()
    prompts = core_zero_shot.apply_template(LABELS, TEMPLATE)
    other_prompts = core_zero_shot.apply_template(OTHER_LABELS, TEMPLATE)
    with tempfile.TemporaryDirectory(prefix="playground-bench-") as folder:
        cache = ModelCache(budget_bytes=2**62, loader=local_loader(Path(folder)))
        loaded, _ = cache.get(KEY)
        embeddings = core_zero_shot.EmbeddingCache()
        device = device_label(loaded.device, loaded.dtype)
        model = "CLIP Italian full size (random weights)"
        rows = []

        def first_query() -> core_zero_shot.BatchResult:
            embeddings.clear()
            return core_zero_shot.classify_photos(photos, LABELS, TEMPLATE, cache=cache, embeddings=embeddings)

        def new_query() -> core_zero_shot.BatchResult:
            return core_zero_shot.classify_photos(photos, OTHER_LABELS, TEMPLATE, cache=cache, embeddings=embeddings)

        def search() -> core_zero_shot.SearchResult:
            return core_zero_shot.search_images(photos, QUERY, top_k=16, cache=cache, embeddings=embeddings)

        cases = [
            (
                "zero-shot, first query",
                "16 photos 640x480 x 10 labels, no cached embeddings",
                first_query,
                lambda: one_call_per_photo(loaded, photos, prompts),
                _agree(LABELS),
            ),
            (
                "zero-shot, new labels, same photos",
                "16 photos 640x480 x 10 other labels, embeddings cached",
                new_query,
                lambda: one_call_per_photo(loaded, photos, other_prompts),
                _agree(OTHER_LABELS),
            ),
            (
                "search by text, same photos",
                "16 photos 640x480, 1 query, embeddings cached",
                search,
                lambda: _cosines(loaded, photos, QUERY),
                _search_agree,
            ),
        ]
        for task, batch, ours, reference, agree in cases:
            results: dict[str, Any] = {}

            def run_ours(ours: Any = ours, results: dict[str, Any] = results) -> None:
                results["ours"] = ours()

            def run_reference(reference: Any = reference, results: dict[str, Any] = results) -> None:
                results["reference"] = reference()

            ours_s, reference_s, ours_peak, reference_peak = measure_pair(
                run_ours, run_reference, repeat, loaded.device
            )
            rows.append(
                Row(
                    task=task,
                    model=model,
                    device=device,
                    batch=batch,
                    ours_s=ours_s,
                    reference_s=reference_s,
                    reference="processor + model, one call per photo",
                    ours_peak_mb=ours_peak,
                    reference_peak_mb=reference_peak,
                    note=agree(results["ours"], results["reference"]),
                    runs=repeat,
                )
            )
    return rows


def _cosines(loaded: LoadedModel, photos: list[Image.Image], query: str) -> torch.Tensor:
    """Cosine of each photo to the query from the per-photo forward passes (the reference's ranking)."""
    rows = []
    scale = loaded.model.logit_scale.detach().float().exp()
    for photo in photos:
        inputs = loaded.processor(text=[query], images=photo, padding=True, return_tensors="pt")
        inputs["pixel_values"] = inputs["pixel_values"].to(loaded.dtype)
        with torch.inference_mode():
            logits = loaded.model(**inputs.to(loaded.device)).logits_per_image
        rows.append(float(logits.float()[0, 0] / scale))
    return torch.tensor(rows)
