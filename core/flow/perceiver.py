"""Perceiver IO optical flow on frames of any size: overlapping tiles of the model's training size,
run in batches and blended.

Frames here are float32 (H, W, 3) in [-1, 1]; flow is float32 (H, W, 2) holding (dx, dy) in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from core.errors import ModelUnavailableError
from core.lazy import F, torch
from core.models import LoadedModel, release_memory
from core.perceiver_attention import use_sdpa_attention
from core.progress import ProgressFn
from core.settings import get_settings

TILE = (368, 496)
"""Perceiver IO's training size (height, width); the model only runs on tiles of this size."""
MIN_OVERLAP = 20
"""Pixels neighbouring tiles share at least."""
FLOW_SCALE = 20.0
"""Pixels per unit of the model's `logits`. PerceiverOpticalFlowDecoder (rescale_factor=100.0)
already divides the decoder's raw output by 100; DeepMind's reference colab, and the colab of the
Hugging Face port, then multiply the model output by FLOW_SCALE_FACTOR = 20. So flow in pixels =
logits · 20 = raw decoder output / 5, with channel 0 = dx (right) and channel 1 = dy (down)."""
DEFAULT_CUDA_TILE_BATCH = 4
"""Tiles per forward pass on CUDA unless PLAYGROUND_FLOW_TILE_BATCH says otherwise."""

TileForward = Callable[[np.ndarray], np.ndarray]
"""Maps a batch of tile pairs, float32 (B, 2, h, w, 3) scaled to [-1, 1], to flow (B, h, w, 2) in pixels."""


# --- tiling ---------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, min_overlap: int = MIN_OVERLAP) -> list[int]:
    """Start offsets of tiles of size `tile` covering 0..length: evenly spread, the first at 0 and
    the last flush with the end, neighbours overlapping by at least `min_overlap`, no repeats."""
    if tile < 1 or not 0 <= min_overlap < tile:
        raise ValueError(f"need 0 <= min_overlap < tile, got tile={tile}, min_overlap={min_overlap}")
    if length < tile:
        raise ValueError(f"length {length} is shorter than the tile {tile}; pad the image first")
    span, step = length - tile, tile - min_overlap
    gaps = math.ceil(span / step)
    if gaps == 0:
        return [0]
    return [(i * span + gaps // 2) // gaps for i in range(gaps + 1)]


def tile_grid(
    height: int, width: int, tile: tuple[int, int] = TILE, min_overlap: int = MIN_OVERLAP
) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the tiles covering an image of at least the tile's size."""
    ys = tile_starts(height, tile[0], min_overlap)
    xs = tile_starts(width, tile[1], min_overlap)
    return [(y, x) for y in ys for x in xs]


def padded_size(height: int, width: int, tile: tuple[int, int] = TILE) -> tuple[int, int]:
    """Images smaller than a tile are padded (bottom and right) up to it; larger sides stay."""
    return max(height, tile[0]), max(width, tile[1])


def tile_weights(tile: tuple[int, int] = TILE) -> np.ndarray:
    """Blending weights of one tile, float32 (h, w): 1 at the border rising by 1 per pixel inwards
    (the distance to the nearest edge), so overlapping tiles hand over smoothly."""
    wy = np.minimum(np.arange(tile[0]) + 1, tile[0] - np.arange(tile[0]))
    wx = np.minimum(np.arange(tile[1]) + 1, tile[1] - np.arange(tile[1]))
    return np.minimum.outer(wy, wx).astype(np.float32)


def coverage(height: int, width: int, tile: tuple[int, int] = TILE, min_overlap: int = MIN_OVERLAP) -> np.ndarray:
    """Summed blending weight of every pixel of an image, float32 (H, W), after padding and tiling."""
    ph, pw = padded_size(height, width, tile)
    total = np.zeros((ph, pw), np.float32)
    weights = tile_weights(tile)
    for y, x in tile_grid(ph, pw, tile, min_overlap):
        total[y : y + tile[0], x : x + tile[1]] += weights
    return total[:height, :width]


def tiled_flow(
    frame1: np.ndarray,
    frame2: np.ndarray,
    forward: TileForward,
    *,
    tile: tuple[int, int] = TILE,
    min_overlap: int = MIN_OVERLAP,
    batch_size: int = 1,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, int]:
    """Flow of any size by running `forward` on overlapping tiles, `batch_size` tiles at a time,
    and blending the tiles with `tile_weights`.

    Args:
        frame1, frame2: float32 (H, W, 3) in [-1, 1], the same size.
        forward: the model on a batch of tiles (see TileForward).

    Returns:
        The flow, float32 (H, W, 2) in pixels, and the number of tiles computed.
    """
    height, width = frame1.shape[:2]
    ph, pw = padded_size(height, width, tile)
    pad = ((0, ph - height), (0, pw - width), (0, 0))
    first, second = (np.pad(f, pad, mode="edge") if (ph, pw) != (height, width) else f for f in (frame1, frame2))
    grid = tile_grid(ph, pw, tile, min_overlap)
    weights = tile_weights(tile)[..., None]
    flow = np.zeros((ph, pw, 2), np.float32)
    total = np.zeros((ph, pw, 1), np.float32)
    th, tw = tile
    for start in range(0, len(grid), batch_size):
        batch = grid[start : start + batch_size]
        tiles = np.stack([np.stack([first[y : y + th, x : x + tw], second[y : y + th, x : x + tw]]) for y, x in batch])
        predicted = forward(tiles)
        for (y, x), piece in zip(batch, predicted, strict=True):
            flow[y : y + th, x : x + tw] += piece * weights
            total[y : y + th, x : x + tw] += weights
        if progress:
            done = start + len(batch)
            progress(done / len(grid), f"Perceiver IO: {done} of {len(grid)} tiles")
    return np.ascontiguousarray((flow / total)[:height, :width]), len(grid)


# --- the model ------------------------------------------------------------------------------------


def image_patches(frames: torch.Tensor) -> torch.Tensor:
    """The 3x3 neighbourhood of every pixel, zero-padded at the border, as Perceiver IO's flow
    model expects it: (B, T, 3, H, W) -> (B, T, 27, H, W), channel (ky · 3 + kx) · 3 + c (the
    order of TensorFlow's extract_patches, which DeepMind's `patches_for_flow` uses)."""
    batch, steps, channels, height, width = frames.shape
    flat = frames.reshape(batch * steps, channels, height, width)
    patches = F.unfold(F.pad(flat, (1, 1, 1, 1)), kernel_size=3)  # (N, c · 9, H · W), channel-major
    patches = patches.reshape(batch * steps, channels, 9, height, width).transpose(1, 2)
    return patches.reshape(batch, steps, 9 * channels, height, width)


def normalise(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 in [-1, 1], the scaling Perceiver IO was trained with."""
    return image.astype(np.float32) / 255.0 * 2 - 1


def perceiver_forward(loaded: LoadedModel) -> TileForward:
    """The tile function of a loaded PerceiverForOpticalFlow, returning flow in pixels. Switches
    that model's attention to scaled_dot_product_attention first (core.perceiver_attention), so a
    tile never holds the full pixel-by-latent attention matrix."""
    use_sdpa_attention(loaded.model)
    tile = tuple(loaded.model.config.train_size)

    def forward(tiles: np.ndarray) -> np.ndarray:
        if tiles.shape[2:4] != tile:
            raise ValueError(f"tiles must be {tile}, got {tiles.shape[2:4]}")
        try:
            frames = torch.from_numpy(tiles).to(loaded.device).permute(0, 1, 4, 2, 3)
            with torch.inference_mode():
                logits = loaded.model(inputs=image_patches(frames).to(loaded.dtype)).logits
        except torch.OutOfMemoryError:
            release_memory()
            if len(tiles) > 1:  # retry with half the tile batch
                half = len(tiles) // 2
                return np.concatenate([forward(tiles[:half]), forward(tiles[half:])])
            raise ModelUnavailableError(
                "Not enough GPU memory for Perceiver IO even one tile at a time. Try again when the "
                "server is less busy, or use the OpenCV methods."
            ) from None
        return logits.float().cpu().numpy() * FLOW_SCALE

    return forward


def tile_batch(device: torch.device) -> int:
    """Tiles per forward pass: PLAYGROUND_FLOW_TILE_BATCH, or by default 4 on CUDA (fewer, larger
    kernels) and 1 on CPU, where batching tiles gained nothing in the benchmark and raised the
    peak memory (benchmarks/RESULTS.md)."""
    return get_settings().flow_tile_batch or (DEFAULT_CUDA_TILE_BATCH if device.type == "cuda" else 1)


def perceiver_flow(
    frame1: np.ndarray, frame2: np.ndarray, loaded: LoadedModel, progress: ProgressFn | None = None
) -> tuple[np.ndarray, int]:
    """Perceiver IO flow between two uint8 RGB frames (H, W, 3) of any (equal) size: float32 (H, W, 2)
    in pixels, and the number of tiles."""
    return tiled_flow(
        normalise(frame1),
        normalise(frame2),
        perceiver_forward(loaded),
        tile=tuple(loaded.model.config.train_size),
        batch_size=tile_batch(loaded.device),
        progress=progress,
    )
