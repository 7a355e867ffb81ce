"""Optical flow between two frames with several methods side by side: the numbers, and for each method
its colour-wheel image, arrows, frame 2 warped back and the photometric error, on one colour scale.

Frames are uint8 (H, W, 3) RGB; flow is float32 (H, W, 2) holding (dx, dy) in pixels from frame 1 to
frame 2: frame1[y, x] ≈ frame2[y + dy, x + dx].
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import checks, render
from core.backend import runs_in
from core.errors import InputError
from core.flow.classic import CLASSICAL, dis_flow, farneback_flow, validate_preset
from core.flow.files import photometric_error, warp_back, write_flo
from core.flow.perceiver import perceiver_flow
from core.models import ModelCache, get_cache
from core.progress import ProgressFn, part
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import get_settings

TASK = "flow"
MIN_SIDE = 16
MIN_STRIDE, MAX_STRIDE = 4, 64


def flow_models() -> list[ModelSpec]:
    return specs_for(TASK)


def flow_methods() -> list[tuple[str, str]]:
    """(display name, key) of every method: the flow models of the registry, then OpenCV's."""
    return [(spec.name, spec.key) for spec in flow_models()] + [(name, key) for key, name in CLASSICAL.items()]


def method_name(method: str, dis_preset: str = "medium") -> str:
    if method == "dis":
        return f"DIS ({dis_preset})"
    return CLASSICAL.get(method) or get_spec(method, TASK).name


def validate_methods(methods: Sequence[str] | str | None) -> list[str]:
    if isinstance(methods, str):
        methods = [methods]
    if not methods:
        raise InputError("Choose at least one flow method.")
    known = [key for _, key in flow_methods()]
    for method in methods:
        if method not in known:
            raise InputError(f"Unknown flow method {str(method)[:60]!r}. Choose one of: {', '.join(known)}.")
    return list(dict.fromkeys(methods))


def frame_pair(image1: Image.Image, image2: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Two RGB images as uint8 arrays, checked to be of one size within the flow limits."""
    if image1.size != image2.size:
        raise InputError(
            f"Both frames must have the same size: frame 1 is {image1.width}×{image1.height}, "
            f"frame 2 is {image2.width}×{image2.height}."
        )
    width, height = image1.size
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The frames are {width}×{height}; flow needs at least {MIN_SIDE}×{MIN_SIDE} pixels.")
    limit = get_settings().flow_max_pixels
    if width * height > limit:
        raise InputError(
            f"The frames are {width}×{height} ({width * height / 1e6:.3g} megapixels); flow is limited to "
            f"{limit / 1e6:.3g} megapixels. Please use smaller frames."
        )
    return np.asarray(image1.convert("RGB")), np.asarray(image2.convert("RGB"))


@dataclass
class MethodFlow:
    key: str
    name: str
    flow: np.ndarray = field(repr=False)
    runtime_ms: float
    device: str = "cpu"
    load_ms: float | None = None
    tiles: int | None = None


def estimate_flow(
    frame1: np.ndarray,
    frame2: np.ndarray,
    method: str,
    *,
    dis_preset: str = "medium",
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> MethodFlow:
    """Flow between two uint8 RGB frames with one method (a registry key, "dis" or "farneback")."""
    name = method_name(method, dis_preset)
    load_ms, tiles, device = None, None, "cpu"
    if method in CLASSICAL:
        start = time.perf_counter()
        flow = dis_flow(frame1, frame2, dis_preset) if method == "dis" else farneback_flow(frame1, frame2)
    else:
        loaded, was_loaded = (cache or get_cache()).get(get_spec(method, TASK).key)
        load_ms = round(loaded.load_seconds * 1000, 1) if was_loaded else None
        device = str(loaded.device)
        start = time.perf_counter()
        flow, tiles = perceiver_flow(frame1, frame2, loaded, progress)
    runtime_ms = round((time.perf_counter() - start) * 1000, 2)
    return MethodFlow(method, name, flow.astype(np.float32), runtime_ms, device, load_ms, tiles)


def color_scale(flows: Sequence[np.ndarray]) -> float:
    """One flow length for the rim of the colour wheel of several flows: the largest of their
    99th-percentile magnitudes (so single outliers do not wash the colours out); at least 0.01 px."""
    return max([0.01] + [float(np.percentile(render.flow_magnitude(flow), 99)) for flow in flows])


@dataclass
class FlowComparison:
    width: int
    height: int
    methods: list[MethodFlow]
    stats: dict[str, dict[str, Any]]
    gallery: list[tuple[np.ndarray, str]] = field(repr=False)
    files: list[Path]
    color_scale_px: float
    error_without_flow: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: stats per method, the images' order in the gallery, file names, summary."""
        return {
            "size": {"width": self.width, "height": self.height},
            "methods": self.stats,
            "color_scale_px": round(self.color_scale_px, 4),
            "photometric_error_without_flow": round(self.error_without_flow, 4),
            "images": [caption for _, caption in self.gallery],
            "files": [path.name for path in self.files],
            "summary": self.summary(),
        }

    def summary(self) -> str:
        parts = []
        for stats in self.stats.values():
            error = stats["mean_photometric_error"]
            parts.append(
                f"{stats['name']}: mean {stats['mean_magnitude']:.2f} px, max {stats['max_magnitude']:.2f} px, "
                f"warp error {'n/a' if error is None else f'{error:.1f}'}"
            )
        return f"{self.width}×{self.height}, error without flow {self.error_without_flow:.1f}. {'; '.join(parts)}."


@runs_in("flow")
def compare_flow(
    image1: Image.Image,
    image2: Image.Image,
    methods: Sequence[str] | str,
    *,
    dis_preset: str = "medium",
    arrow_stride: int = 16,
    out_dir: Path | None = None,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> FlowComparison:
    """Flow from frame 1 to frame 2 with each method, and for each: the colour-wheel image with
    its legend, arrows over frame 1, frame 2 warped back onto frame 1, the photometric error map,
    the numbers, and (when `out_dir` is given) the flow as .flo and .npy files in `out_dir`.

    All methods share one colour and arrow scale so that their pictures compare directly.
    """
    methods = validate_methods(methods)
    dis_preset = validate_preset(dis_preset)
    arrow_stride = checks.whole(arrow_stride, "Arrow spacing", MIN_STRIDE, MAX_STRIDE)
    frame1, frame2 = frame_pair(image1, image2)
    results = []
    share = 1 / len(methods)
    for index, method in enumerate(methods):
        step = part(progress, index * share, share)
        step(0, f"Running {method_name(method, dis_preset)}")
        results.append(estimate_flow(frame1, frame2, method, dis_preset=dis_preset, cache=cache, progress=step))
    if progress:
        progress(1.0, "Drawing")
    scale = color_scale([r.flow for r in results])
    stats: dict[str, dict[str, Any]] = {}
    gallery: list[tuple[np.ndarray, str]] = []
    files: list[Path] = []
    for result in results:
        warped, valid = warp_back(frame2, result.flow)
        error = photometric_error(frame1, warped)
        magnitude = render.flow_magnitude(result.flow)
        arrows, arrow_scale = render.draw_flow_arrows(frame1, result.flow, arrow_stride, scale)
        stats[result.key] = {
            "name": result.name,
            "mean_magnitude": round(float(magnitude.mean()), 4),
            "max_magnitude": round(float(magnitude.max()), 4),
            "mean_photometric_error": round(float(error[valid].mean()), 4) if valid.any() else None,
            "valid_fraction": round(float(valid.mean()), 4),
            "runtime_ms": result.runtime_ms,
            "load_ms": result.load_ms,
            "device": result.device,
            "tiles": result.tiles,
            "arrow_scale": round(arrow_scale, 4),
        }
        gallery += [
            (render.add_flow_legend(render.flow_to_color(result.flow, scale), scale), f"{result.name} · flow"),
            (arrows, f"{result.name} · arrows (×{arrow_scale:.2g})"),
            (warped, f"{result.name} · frame 2 warped onto frame 1"),
            (render.error_to_color(error, valid), f"{result.name} · photometric error"),
        ]
        if out_dir is not None:
            stem = result.key if result.key != "dis" else f"dis-{dis_preset}"
            write_flo(out_dir / f"{stem}.flo", result.flow)
            np.save(out_dir / f"{stem}.npy", result.flow)
            files += [out_dir / f"{stem}.flo", out_dir / f"{stem}.npy"]
    error_without_flow = float(photometric_error(frame1, frame2).mean())
    height, width = frame1.shape[:2]
    return FlowComparison(width, height, results, stats, gallery, files, scale, error_without_flow)
