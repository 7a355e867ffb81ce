"""Figures with axes, colour bars and histograms, drawn with matplotlib and returned as RGB arrays
(and a strip of titled pictures, drawn with PIL).

Every figure is a `matplotlib.figure.Figure` drawn by its own Agg canvas: pyplot (and its global
current figure) is never used, so many requests can draw at once. matplotlib is imported on first use.
Heat maps over photos (`overlay`) are blended with numpy and OpenCV, using a matplotlib colour map.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

DPI = 100
HEAT = "inferno"
"""Colour map of attention and confidence maps (dark = little, bright = much)."""
UNCERTAIN = "viridis"
"""Colour map of entropy maps."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _wrap(title: str, width: int = 60) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def to_array(figure: Any) -> np.ndarray:
    """Draw the figure on its Agg canvas; (H, W, 3) uint8."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def colour_map(values: np.ndarray, name: str = HEAT, vmax: float | None = None) -> np.ndarray:
    """Values (>= 0) -> (H, W, 3) uint8 colours of a matplotlib colour map, scaled to [0, vmax or max]."""
    from matplotlib import colormaps

    top = float(np.nanmax(values)) if vmax is None else vmax
    scaled = np.clip(np.nan_to_num(values) / top, 0, 1) if top > 0 else np.zeros_like(values)
    return (colormaps[name](scaled)[..., :3] * 255).round().astype(np.uint8)


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized to (width, height) `size`, bilinear."""
    return cv2.resize(grid.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


def overlay(view: np.ndarray, grid: np.ndarray, opacity: float, name: str = HEAT) -> np.ndarray:
    """A heat map of `grid` (any h x w) laid over `view` (H, W, 3 uint8): opacity 0 is the photo alone,
    1 the colours alone. Colours span the map's minimum to its maximum."""
    if not 0 <= opacity <= 1:
        raise ValueError("opacity must be from 0 to 1")
    height, width = view.shape[:2]
    low = float(np.nanmin(grid))
    colours = colour_map(upsample(grid - low, (width, height)), name, vmax=float(np.nanmax(grid)) - low or 1.0)
    blended = (1 - opacity) * view.astype(np.float32) + opacity * colours.astype(np.float32)
    return blended.round().clip(0, 255).astype(np.uint8)


def heat_map(grid: np.ndarray, title: str, label: str, *, cmap: str = HEAT) -> np.ndarray:
    """The plain map with its cells, axes in grid cells and a colour bar in the map's own units (colours
    span its minimum to its maximum)."""
    figure = _figure(5.2, 4.6)
    axes = figure.add_subplot()
    image = axes.imshow(grid, cmap=cmap, interpolation="nearest")
    axes.set_title(_wrap(title), fontsize=9)
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    figure.colorbar(image, ax=axes, label=label, shrink=0.9)
    return to_array(figure)


def maps_grid(maps: Sequence[tuple[np.ndarray, str]], title: str, label: str, *, columns: int = 4) -> np.ndarray:
    """Small maps side by side on one colour scale (the smallest to the largest value of any), with one
    colour bar."""
    if not maps:
        raise ValueError("no maps to draw")
    columns = min(columns, len(maps))
    rows = math.ceil(len(maps) / columns)
    figure = _figure(2.1 * columns + 1.0, 2.1 * rows + 0.5)
    vmin = min(float(np.nanmin(values)) for values, _ in maps)
    vmax = max(float(np.nanmax(values)) for values, _ in maps)
    image = None
    axes_list = []
    for index, (values, name) in enumerate(maps):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = axes.imshow(values, cmap=HEAT, interpolation="nearest", vmin=vmin, vmax=max(vmax, vmin + 1e-12))
        axes.set_title(name, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
        axes_list.append(axes)
    figure.suptitle(_wrap(title, 90), fontsize=10)
    figure.colorbar(image, ax=axes_list, label=label, shrink=0.8)
    return to_array(figure)


def maps_over_image(
    view: np.ndarray,
    panels: Sequence[tuple[np.ndarray, str, str, str, float | None]],
) -> np.ndarray:
    """Maps over the masked cells of an image, side by side, each with its colour bar. Each panel is
    (grid with NaN where there is nothing to show, title, colour-bar label, colour map, vmax or None)."""
    figure = _figure(4.4 * len(panels), 4.2)
    for index, (grid, title, label, cmap, vmax) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        axes.imshow(view, extent=(0, grid.shape[1], grid.shape[0], 0))
        shown = np.ma.masked_invalid(grid)
        image = axes.imshow(
            shown,
            cmap=cmap,
            interpolation="nearest",
            vmin=0,
            vmax=vmax,
            alpha=0.85,
            extent=(0, grid.shape[1], grid.shape[0], 0),
        )
        axes.set_title(title, fontsize=10)
        axes.set_xticks(range(0, grid.shape[1] + 1, 7))
        axes.set_yticks(range(0, grid.shape[0] + 1, 7))
        figure.colorbar(image, ax=axes, label=label, shrink=0.85)
    return to_array(figure)


def outcome_panel(view: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """Per masked cell: 2 = right (top-1), 1 = in the top 5, 0 = wrong; NaN elsewhere. A categorical map
    over the image with a legend."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = ["#d62728", "#ff9f1c", "#2ca02c"]
    figure = _figure(4.6, 4.2)
    axes = figure.add_subplot()
    extent = (0, outcome.shape[1], outcome.shape[0], 0)
    axes.imshow(view, extent=extent)
    axes.imshow(
        np.ma.masked_invalid(outcome),
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=2.5,
        interpolation="nearest",
        alpha=0.8,
        extent=extent,
    )
    axes.set_title("Masked patches: predicted right?", fontsize=10)
    axes.set_xticks(range(0, outcome.shape[1] + 1, 7))
    axes.set_yticks(range(0, outcome.shape[0] + 1, 7))
    names = ["wrong", "true token in the top 5", "right (top 1)"]
    axes.legend(
        handles=[Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)][::-1],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=1,
        fontsize=8,
        frameon=False,
    )
    return to_array(figure)


def token_histogram(
    predicted: Sequence[int], true: Sequence[int] | None = None, *, top: int = 20, vocab_size: int = 8192
) -> np.ndarray:
    """Bars of how often each token was predicted for the masked patches (the `top` most frequent, in
    order), and beside them how often it is the true token there when `true` is given."""
    tokens, counts = np.unique(np.asarray(predicted, dtype=np.int64), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    shown = tokens[order]
    figure = _figure(8.0, 3.8)
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    width = 0.4 if true is not None else 0.8
    axes.bar(
        positions - (width / 2 if true is not None else 0), counts[order], width, label="predicted", color="#4c72b0"
    )
    if true is not None:
        true_counts = {int(t): int(c) for t, c in zip(*np.unique(np.asarray(true), return_counts=True), strict=True)}
        axes.bar(
            positions + width / 2,
            [true_counts.get(int(t), 0) for t in shown],
            width,
            label="true (VAE)",
            color="#dd8452",
        )
        axes.legend(fontsize=8)
    axes.set_xticks(positions, [str(int(t)) for t in shown], rotation=60, fontsize=7)
    axes.set_xlabel(f"visual token (of {vocab_size})")
    axes.set_ylabel("masked patches")
    axes.set_title(
        f"Predicted tokens: {len(tokens)} different {'one' if len(tokens) == 1 else 'ones'} "
        f"for {len(predicted)} masked patches (the {len(shown)} most frequent shown)",
        fontsize=10,
    )
    return to_array(figure)


def picture_strip(pictures: Sequence[tuple[np.ndarray, str]], side: int = 224, gap: int = 8) -> np.ndarray:
    """Images side by side at `side` x `side` (smaller ones enlarged with LANCZOS), a title over each;
    drawn with PIL (no axes here)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(13)
    lines = [textwrap.wrap(title, 30) or [""] for _, title in pictures]
    band = 8 + 16 * max(len(wrapped) for wrapped in lines)
    canvas = Image.new("RGB", (len(pictures) * (side + gap) + gap, band + side + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for index, ((picture, _), wrapped) in enumerate(zip(pictures, lines, strict=True)):
        left = gap + index * (side + gap)
        image = Image.fromarray(picture).convert("RGB")
        if image.size != (side, side):
            image = image.resize((side, side), Image.Resampling.LANCZOS)
        canvas.paste(image, (left, band))
        for row, text in enumerate(wrapped):
            width = draw.textlength(text, font=font)
            draw.text((left + (side - width) / 2, 4 + 16 * row), text, fill=(20, 20, 20), font=font)
    return np.asarray(canvas)


def sound_figure(original: np.ndarray, reconstructed: np.ndarray, rate: int, start: float = 0.0) -> np.ndarray:
    """Waveforms (top) and spectrograms (bottom) of two mono signals in [-1, 1] at `rate` Hz, original on the
    left and reconstruction on the right; one time axis (seconds into the clip) for all four, one amplitude
    axis per row, one frequency axis (kHz) and one colour scale (dB) for both spectrograms."""
    figure = _figure(9.0, 4.6)
    axes = figure.subplots(2, 2, sharex=True, sharey="row")
    times = start + np.arange(len(original)) / rate
    images = []
    for column, (signal, title) in enumerate(((original, "Original"), (reconstructed, "Reconstruction"))):
        wave_axes, spec_axes = axes[0, column], axes[1, column]
        wave_axes.plot(times, signal, linewidth=0.5, color="#1f5fa8")
        wave_axes.set_title(title, fontsize=10)
        wave_axes.set_ylim(-1.05, 1.05)
        silence_floor = 1e-9  # no log of zero for silence
        _, _, _, image = spec_axes.specgram(
            signal.astype(np.float64) + silence_floor,
            NFFT=1024,
            Fs=rate / 1000,
            noverlap=768,
            xextent=(times[0], times[-1]),
            cmap="magma",
        )
        images.append(image)
        spec_axes.set_xlabel("time in the clip (s)")
    low = min(float(np.nanmin(image.get_array())) for image in images)
    high = max(float(np.nanmax(image.get_array())) for image in images)
    for image in images:
        image.set_clim(max(low, high - 100), high)
    axes[0, 0].set_ylabel("amplitude")
    axes[1, 0].set_ylabel("frequency (kHz)")
    figure.colorbar(images[-1], ax=axes[1, :], label="power (dB)", shrink=0.9)
    return to_array(figure)


def psnr_plot(psnr: Sequence[float], times: Sequence[float]) -> np.ndarray:
    """Per-frame PSNR (dB) against the frames' times, with the mean as a dashed line."""
    figure = _figure(6.0, 2.4)
    axes = figure.subplots()
    axes.plot(times, psnr, marker="o", markersize=3, color="#1f5fa8")
    mean = float(np.mean(psnr))
    axes.axhline(mean, linestyle="--", color="#b03a2e", linewidth=1, label=f"mean {mean:.2f} dB")
    axes.set_xlabel("time in the clip (s)")
    axes.set_ylabel("PSNR (dB)")
    axes.set_title("Reconstruction PSNR per frame", fontsize=10)
    axes.legend(loc="best", fontsize=8)
    axes.grid(alpha=0.3)
    return to_array(figure)
