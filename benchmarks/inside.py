"""The Inside tab's attention against the plain transformers way, on full-size BEiT-base with random weights.

Ours: the Classify tab's loaded model (SDPA) switched to eager attention for the call and back
(core/attention/). The plain way: a second copy loaded with `attn_implementation="eager"` and called
with `output_attentions=True`; it costs a second model in memory and its own load, which the row's note
gives. A second row times classification on the same model right after attention calls, against the
image-classification pipeline: the SDPA path is what it was.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Row
from benchmarks.full_size import save_full_size
from benchmarks.tasks import Bench, _classification_pipeline, _labels_agree, photo
from core import attention as core_attention
from core import classify as core_classify

KEY = "beit-base-224"


def _eager_copy(folder: Path, loaded: Any) -> tuple[Any, float, float]:
    """The plain way's model: the same checkpoint loaded again with eager attention; load s and MB."""
    from transformers import BeitForImageClassification

    start = time.perf_counter()
    model = BeitForImageClassification.from_pretrained(
        save_full_size(KEY, folder), attn_implementation="eager", dtype=loaded.dtype
    )
    model = model.to(loaded.device).eval()
    seconds = time.perf_counter() - start
    megabytes = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    return model, seconds, megabytes


def run(repeat: int) -> list[Row]:
    image = photo()
    rows = []
    with tempfile.TemporaryDirectory(prefix="playground-bench-") as folder:
        bench = Bench(Path(folder), repeat)
        loaded = bench.get(KEY)
        eager, load_s, copy_mb = _eager_copy(Path(folder), loaded)

        def reference() -> np.ndarray:
            pixels = loaded.processor(images=image, return_tensors="pt")["pixel_values"].to(loaded.device, loaded.dtype)
            with torch.inference_mode():
                attentions = eager(pixel_values=pixels, output_attentions=True).attentions
            return attentions[-1][0].float().mean(dim=0)[0, 1:].reshape(14, 14).cpu().numpy()

        def agree(ours: core_attention.AttentionResult, plain: np.ndarray) -> str:
            same = np.allclose(ours.map, plain, atol=1e-5)
            return (
                f"{'same' if same else 'DIFFERENT'} class-token map; the plain way keeps a second copy "
                f"({copy_mb:.0f} MB, loaded in {load_s:.1f} s)"
            )

        rows.append(
            bench.row(
                "attention, class token of the last layer",
                [KEY],
                f"1 image {image.width}x{image.height}",
                lambda: core_attention.attention(image, KEY, 0, "mean", "last layer", cache=bench.cache),
                reference,
                'a second copy with attn_implementation="eager", output_attentions=True',
                agree,
            )
        )
        pipe = _classification_pipeline(loaded)
        row = bench.row(
            "classify right after attention calls",
            [KEY],
            f"1 image {image.width}x{image.height}",
            lambda: core_classify.classify(image, [KEY], 5, cache=bench.cache),
            lambda: [pipe(image, top_k=5)],
            'pipeline("image-classification")',
            _labels_agree,
        )
        row.note += f"; attention implementation after the attention calls: {loaded.model.config._attn_implementation}"
        rows.append(row)
    return rows
