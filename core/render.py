"""Pure drawing functions: optical flow colours (Middlebury colour wheel), legend wheel, arrows,
error maps, and segmentation palettes, overlays and index PNGs. Inputs and outputs are numpy arrays
or PIL images; nothing here loads models or touches files.

Flow arrays are float (H, W, 2) with (dx, dy) in pixels, x to the right and y downwards; images
are uint8 RGB (H, W, 3).
"""

from __future__ import annotations

import colorsys
import functools

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

WHEEL_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))
"""The Middlebury colour wheel (Baker et al., 2011): hue segments and how many colours each has."""

WHEEL_ANCHORS = {
    0: (255, 0, 0),
    15: (255, 255, 0),
    21: (0, 255, 0),
    25: (0, 255, 255),
    36: (0, 0, 255),
    49: (255, 0, 255),
}
"""Wheel index -> colour at the start of each segment: red, yellow, green, cyan, blue, magenta."""


@functools.cache
def flow_color_wheel() -> np.ndarray:
    """The 55 colours of the Middlebury flow colour wheel as float (55, 3) in 0..255.

    Each segment ramps one channel linearly from one primary/secondary colour to the next:
    red -> yellow -> green -> cyan -> blue -> magenta -> red.
    """
    ramps = []
    for name, count in WHEEL_SEGMENTS:
        up = np.floor(255 * np.arange(count) / count)
        full, zero = np.full(count, 255.0), np.zeros(count)
        channels = {
            "RY": (full, up, zero),
            "YG": (255 - up, full, zero),
            "GC": (zero, full, up),
            "CB": (zero, 255 - up, full),
            "BM": (up, zero, full),
            "MR": (full, zero, 255 - up),
        }[name]
        ramps.append(np.stack(channels, axis=1))
    wheel = np.concatenate(ramps)
    wheel.setflags(write=False)
    return wheel


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """Per-pixel length of a (H, W, 2) flow, float32 (H, W); non-finite vectors count as 0."""
    _check_flow(flow)
    values = np.nan_to_num(flow.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.hypot(values[..., 0], values[..., 1])


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow field with the Middlebury colour wheel.

    The direction picks the hue (right = red, down = yellow-orange, left = cyan-blue, up = violet)
    and the magnitude the saturation: zero flow is white, a vector of length `max_magnitude`
    (default: the largest in `flow`) has the full wheel colour, longer vectors are darkened to 75 %.

    Args:
        flow: float (H, W, 2), (dx, dy) in pixels.
        max_magnitude: the length shown fully saturated; must be positive when given.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    _check_flow(flow)
    values = np.nan_to_num(flow.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if max_magnitude is None:
        max_magnitude = float(np.hypot(values[..., 0], values[..., 1]).max(initial=0.0))
    elif not (np.isfinite(max_magnitude) and max_magnitude > 0):
        raise ValueError(f"max_magnitude must be a positive number, got {max_magnitude}")
    scale = max(max_magnitude, np.finfo(np.float32).eps)
    u, v = values[..., 0] / scale, values[..., 1] / scale
    wheel = flow_color_wheel() / 255.0
    count = len(wheel)
    radius = np.hypot(u, v)
    angle = np.arctan2(-v, -u) / np.pi
    position = (angle + 1) / 2 * (count - 1)
    k0 = np.floor(position).astype(np.int64) % count
    k1 = (k0 + 1) % count
    fraction = (position - np.floor(position))[..., None]
    color = (1 - fraction) * wheel[k0] + fraction * wheel[k1]
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    return np.clip(np.rint(color * 255), 0, 255).astype(np.uint8)


def flow_legend_wheel(size: int, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """A disk of diameter `size` showing the colour of every direction and length up to the
    maximum (at the rim), as uint8 (size, size, 3) RGB on `background`."""
    if size < 3:
        raise ValueError(f"size must be at least 3, got {size}")
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    vectors = np.stack([(x - centre) / centre, (y - centre) / centre], axis=-1)
    wheel = flow_to_color(vectors, max_magnitude=1.0)
    outside = np.hypot(vectors[..., 0], vectors[..., 1]) > 1
    wheel[outside] = background
    return wheel


def add_flow_legend(color: np.ndarray, max_magnitude: float, unit: str = "px") -> np.ndarray:
    """`color` (a flow_to_color image) with a white panel on its right holding the legend wheel
    and the length that the rim of the wheel stands for."""
    height, width = color.shape[:2]
    panel = int(np.clip(min(height, width) * 0.3, 72, 160))
    diameter = panel - 16
    canvas = Image.new("RGB", (width + panel, max(height, diameter + 40)), (255, 255, 255))
    canvas.paste(Image.fromarray(color), (0, 0))
    canvas.paste(Image.fromarray(flow_legend_wheel(diameter)), (width + 8, 8))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((width + 8, 8, width + 8 + diameter - 1, 8 + diameter - 1), outline=(160, 160, 160))
    font = _font(max(10, panel // 9))
    draw.text(
        (width + panel / 2, diameter + 14),
        f"rim = {max_magnitude:.3g} {unit}",
        fill=(40, 40, 40),
        font=font,
        anchor="mt",
    )
    return np.asarray(canvas)


def draw_flow_arrows(
    image: np.ndarray, flow: np.ndarray, stride: int = 16, max_magnitude: float | None = None
) -> tuple[np.ndarray, float]:
    """Arrows of the flow every `stride` pixels over a dimmed copy of `image`, coloured by the
    colour wheel. Arrows are scaled so that the longest (`max_magnitude`, default the largest in
    `flow`) is 0.9 × stride long; returns the image and that scale (arrow pixels per flow pixel)."""
    _check_flow(flow)
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and flow {flow.shape[:2]} differ in size")
    if stride < 2:
        raise ValueError(f"stride must be at least 2, got {stride}")
    magnitude = flow_magnitude(flow)
    if max_magnitude is None:
        max_magnitude = float(magnitude.max(initial=0.0))
    canvas = np.ascontiguousarray((image.astype(np.float32) * 0.55 + 255 * 0.15).astype(np.uint8))
    if max_magnitude <= 0:
        return canvas, 0.0
    scale = 0.9 * stride / max_magnitude
    colors = flow_to_color(flow, max_magnitude)
    values = np.nan_to_num(flow.astype(np.float32))
    height, width = magnitude.shape
    for y in range(stride // 2, height, stride):
        for x in range(stride // 2, width, stride):
            dx, dy = values[y, x] * scale
            color = tuple(int(c) for c in colors[y, x])
            if magnitude[y, x] < 0.05 * max_magnitude:
                cv2.circle(canvas, (x, y), 1, color, -1, cv2.LINE_AA)
                continue
            end = (round(x + dx), round(y + dy))
            cv2.arrowedLine(canvas, (x, y), end, (0, 0, 0), 3, cv2.LINE_AA, tipLength=0.35)
            cv2.arrowedLine(canvas, (x, y), end, color, 1, cv2.LINE_AA, tipLength=0.35)
    return canvas, scale


def error_to_color(error: np.ndarray, valid: np.ndarray | None = None, vmax: float | None = None) -> np.ndarray:
    """Colour-map a per-pixel error (H, W) with the inferno colormap from 0 to `vmax` (default the
    99th percentile of the valid pixels, at least 1); pixels where `valid` is False are grey."""
    if error.ndim != 2:
        raise ValueError(f"error must be (H, W), got shape {error.shape}")
    valid = np.ones(error.shape, bool) if valid is None else valid
    if vmax is None:
        vmax = max(float(np.percentile(error[valid], 99)) if valid.any() else 0.0, 1.0)
    scaled = np.clip(np.nan_to_num(error) / vmax * 255, 0, 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    colored[~valid] = (128, 128, 128)
    return colored


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size)


def _check_flow(flow: np.ndarray) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be a (H, W, 2) array, got {getattr(flow, 'shape', type(flow))}")


# --- segmentation ---------------------------------------------------------------------------

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
