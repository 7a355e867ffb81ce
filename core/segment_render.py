"""Pure drawing functions for segmentations: palette, colour map, overlay, index PNG."""

from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image

NO_SEGMENT = 0


@functools.cache
def palette(size: int = 256) -> np.ndarray:
    """`size` distinct RGB colours (uint8, shape (size, 3)); entry 0 is black (no segment).

    Hues step by the golden angle so neighbouring ids differ strongly; saturation and value cycle
    so that ids whose hues come close again still differ.
    """
    colours = np.zeros((size, 3), dtype=np.uint8)
    for index in range(1, size):
        hue = (index * 0.618033988749895) % 1.0
        saturation = (0.85, 0.6, 0.95)[index % 3]
        value = (0.95, 0.75, 0.55)[(index // 3) % 3]
        colours[index] = np.round(np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255)
    return colours


def hex_colour(rgb: np.ndarray | tuple[int, int, int]) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_map(label_map: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """RGB image (H, W, 3) uint8 painting each id of `label_map` (H, W) with `colours[id]`."""
    if label_map.ndim != 2:
        raise ValueError(f"label_map must be 2-D, got shape {label_map.shape}")
    if label_map.size and int(label_map.max()) >= len(colours):
        raise ValueError(f"label_map has id {int(label_map.max())} but only {len(colours)} colours")
    return colours[label_map]


def overlay(image: np.ndarray, label_map: np.ndarray, colours: np.ndarray, opacity: float) -> np.ndarray:
    """Blend segment colours over an RGB image (H, W, 3) uint8 where `label_map` != 0.

    out = round((1 - opacity) * image + opacity * colour) on segment pixels; others unchanged.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within [0, 1], got {opacity}")
    if image.shape[:2] != label_map.shape:
        raise ValueError(f"image {image.shape[:2]} and label map {label_map.shape} differ in size")
    blended = (1.0 - opacity) * image.astype(np.float32) + opacity * colour_map(label_map, colours).astype(np.float32)
    out = image.copy()
    inside = label_map != NO_SEGMENT
    out[inside] = np.round(blended[inside]).astype(np.uint8)
    return out


def index_png(label_map: np.ndarray, colours: np.ndarray) -> Image.Image:
    """A palette ("P") image whose pixel values are the ids of `label_map` and whose palette shows
    them in colour: ordinary viewers show colours, `np.array(Image.open(...))` gives the ids."""
    if label_map.size and int(label_map.max()) > 255:
        raise ValueError("an index PNG holds at most 255 segments")
    image = Image.fromarray(label_map.astype(np.uint8), mode="P")
    image.putpalette(colours[:256].astype(np.uint8).flatten().tolist())
    return image
