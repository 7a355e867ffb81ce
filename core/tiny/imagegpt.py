"""A tiny random ImageGPT whose colour palette is k-means colours of the project's example photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.tiny.common import BILINEAR

ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"
PALETTE_PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
NUM_CLUSTERS = 512


def example_photo_clusters(num_clusters: int = NUM_CLUSTERS, seed: int = 0, iterations: int = 12) -> np.ndarray:
    """k-means colours of the example photos, scaled to [-1, 1] like ImageGPT's own clusters."""
    pixels = np.concatenate(
        [np.asarray(Image.open(ASSETS / name).convert("RGB").reduce(4)).reshape(-1, 3) for name in PALETTE_PHOTOS]
    )
    pixels = np.unique(pixels, axis=0).astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(seed)
    centroids = pixels[rng.choice(len(pixels), num_clusters, replace=False)]
    for _ in range(iterations):
        distances = (pixels**2).sum(1)[:, None] - 2 * pixels @ centroids.T + (centroids**2).sum(1)[None, :]
        nearest = distances.argmin(1)
        counts = np.bincount(nearest, minlength=num_clusters)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, pixels)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return np.round(centroids.astype(np.float64), 6)


def tiny_imagegpt() -> tuple[Any, Any]:
    from transformers import ImageGPTConfig, ImageGPTImageProcessorPil

    config = ImageGPTConfig(
        vocab_size=NUM_CLUSTERS + 1, n_positions=32 * 32, n_embd=32, n_layer=2, n_head=2, tie_word_embeddings=False
    )
    processor = ImageGPTImageProcessorPil(
        clusters=example_photo_clusters(),
        size={"height": 32, "width": 32},
        resample=BILINEAR,
        do_normalize=True,
        do_color_quantize=True,
    )
    return config, processor
