"""Optical flow between two frames: Perceiver IO (tiled, any image size) and OpenCV's DIS and
Farneback, with the pictures and numbers to compare them, and flow over a short video.

Flow arrays are float32 (H, W, 2) holding (dx, dy) in pixels from frame 1 to frame 2:
frame1[y, x] ≈ frame2[y + dy, x + dx].
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from core import render
from core.errors import InputError, ModelUnavailableError
from core.lazy import F, torch
from core.models import LoadedModel, ModelCache, get_cache, release_memory
from core.perceiver_attention import use_sdpa_attention
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import get_settings
from core.video import read_video, write_mp4

TASK = "flow"
TILE = (368, 496)
"""Perceiver IO's training size (height, width); the model only runs on tiles of this size."""
MIN_OVERLAP = 20
FLOW_SCALE = 20.0
DEFAULT_CUDA_TILE_BATCH = 4
"""Pixels per unit of the model's `logits`. PerceiverOpticalFlowDecoder (rescale_factor=100.0)
already divides the decoder's raw output by 100; DeepMind's reference colab, and the colab of the
Hugging Face port, then multiply the model output by FLOW_SCALE_FACTOR = 20. So flow in pixels =
logits · 20 = raw decoder output / 5, with channel 0 = dx (right) and channel 1 = dy (down)."""
MIN_SIDE = 16
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
CLASSICAL = {"dis": "DIS", "farneback": "Farneback"}
MIN_STRIDE, MAX_STRIDE = 4, 64
MAX_FRAME_STEP = 10
FLOW_FILE_MAGIC = 202021.25

ProgressFn = Callable[[float, str], None]
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
    """Summed blending weight of every pixel of an image (H, W) after padding and tiling."""
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
        The flow, float32 (H, W, 2), and the number of tiles computed.
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


# --- Perceiver IO ---------------------------------------------------------------------------------


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
    """uint8 RGB -> float32 in [-1, 1], the scaling Perceiver IO was trained with."""
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
    """Perceiver IO flow between two uint8 RGB frames of any (equal) size, and the tile count."""
    return tiled_flow(
        normalise(frame1),
        normalise(frame2),
        perceiver_forward(loaded),
        tile=tuple(loaded.model.config.train_size),
        batch_size=tile_batch(loaded.device),
        progress=progress,
    )


def tiny_perceiver_flow() -> tuple[Any]:
    """A tiny PerceiverForOpticalFlow config that keeps the real 368x496 tile (the Fourier position
    encodings and the decoder's output shape are built for exactly that size). d_model must be 322:
    the 64 channels of the patch projection plus 258 of the position encoding. No preprocessor:
    the checkpoint ships none, core.flow prepares the inputs."""
    from transformers import PerceiverConfig

    config = PerceiverConfig(
        num_latents=16,
        d_latents=32,
        d_model=322,
        num_blocks=1,
        num_self_attends_per_block=1,
        num_self_attention_heads=2,
        num_cross_attention_heads=1,
        train_size=list(TILE),
    )
    return (config,)


# --- OpenCV ---------------------------------------------------------------------------------------


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def dis_flow(frame1: np.ndarray, frame2: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV's Dense Inverse Search flow (Kroeger et al., 2016) on uint8 frames."""
    if preset not in DIS_PRESETS:
        raise InputError(f"Unknown DIS preset {str(preset)[:30]!r}. Choose one of: {', '.join(DIS_PRESETS)}.")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    return dis.calc(_gray(frame1), _gray(frame2), None)


def farneback_flow(frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
    """OpenCV's Farneback polynomial-expansion flow on uint8 frames."""
    return cv2.calcOpticalFlowFarneback(
        _gray(frame1), _gray(frame2), None, pyr_scale=0.5, levels=3, winsize=21, iterations=3,
        poly_n=5, poly_sigma=1.1, flags=0,
    )  # fmt: skip


# --- warping and files ----------------------------------------------------------------------------


def warp_back(frame2: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame 2 sampled at x + flow (bilinear), which should look like frame 1, and where that
    sample lay inside frame 2 (bool (H, W))."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    warped = cv2.remap(frame2, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return warped, valid


def photometric_error(frame1: np.ndarray, warped: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute difference over the colour channels, float32 (H, W) in 0..255."""
    diff = np.abs(frame1.astype(np.float32) - warped.astype(np.float32))
    return diff.mean(axis=2) if diff.ndim == 3 else diff


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write a Middlebury .flo file: float32 202021.25, int32 width, int32 height, then (H, W, 2) float32."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    with open(path, "wb") as fp:
        np.array([FLOW_FILE_MAGIC], "<f4").tofile(fp)
        np.array([width, height], "<i4").tofile(fp)
        np.ascontiguousarray(flow, "<f4").tofile(fp)


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury .flo file into float32 (H, W, 2)."""
    with open(path, "rb") as fp:
        magic = np.fromfile(fp, "<f4", 1)
        if magic.size != 1 or magic[0] != FLOW_FILE_MAGIC:
            raise ValueError("not a Middlebury .flo file (wrong magic number)")
        width, height = (int(v) for v in np.fromfile(fp, "<i4", 2))
        data = np.fromfile(fp, "<f4", width * height * 2)
    if data.size != width * height * 2:
        raise ValueError("the .flo file is truncated")
    return data.reshape(height, width, 2)


# --- requests -------------------------------------------------------------------------------------


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


def validate_whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise InputError(f"{name} must be a whole number from {low} to {high}.")
    if not low <= value <= high:
        raise InputError(f"{name} must be from {low} to {high}, not {value}.")
    return int(value)


def validate_preset(preset: Any) -> str:
    if preset not in DIS_PRESETS:
        raise InputError(f"Unknown DIS preset {str(preset)[:30]!r}. Choose one of: {', '.join(DIS_PRESETS)}.")
    return preset


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
    arrow_stride = validate_whole(arrow_stride, "Arrow spacing", MIN_STRIDE, MAX_STRIDE)
    frame1, frame2 = frame_pair(image1, image2)
    results = []
    share = 1 / len(methods)
    for index, method in enumerate(methods):

        def step(fraction: float, message: str, index: int = index) -> None:
            if progress:
                progress((index + fraction) * share, message)

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


# --- video ----------------------------------------------------------------------------------------


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two uint8 RGB images next to each other, top-aligned on white."""
    height = max(left.shape[0], right.shape[0])
    padded = [np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255) for im in (left, right)]
    return np.concatenate(padded, axis=1)


@dataclass
class VideoFlow:
    video: Path
    info: dict[str, Any]


def video_flow(
    path: str | Path,
    method: str,
    *,
    dis_preset: str = "medium",
    frame_step: int = 1,
    out_dir: Path,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> VideoFlow:
    """Flow between consecutive frames (every `frame_step`-th frame) of a short clip, written to
    `out_dir` as an mp4 showing each frame beside its colour-coded flow (one colour scale for the
    whole clip)."""
    if not isinstance(method, str):
        raise InputError("Choose one flow method for the video.")
    method = validate_methods(method)[0]
    dis_preset = validate_preset(dis_preset)
    frame_step = validate_whole(frame_step, "Frame step", 1, MAX_FRAME_STEP)
    settings = get_settings()
    if progress:
        progress(0.0, "Reading the video")
    clip = read_video(
        path,
        max_frames=settings.flow_video_max_frames,
        max_seconds=settings.flow_video_max_seconds,
        max_pixels=settings.flow_video_max_pixels,
    )
    frames = clip.frames[::frame_step]
    if len(frames) < 2:
        raise InputError(
            f"The video has {len(clip.frames)} frames: too few for a frame step of {frame_step}. "
            "Lower the frame step or use a longer clip."
        )
    height, width = frames[0].shape[:2]
    if min(width, height) < MIN_SIDE:
        raise InputError(f"The video is {width}×{height}; flow needs at least {MIN_SIDE}×{MIN_SIDE} pixels.")
    pairs = len(frames) - 1
    results: list[MethodFlow] = []
    for index in range(pairs):

        def step(fraction: float, message: str, index: int = index) -> None:
            if progress:
                progress((index + fraction) / pairs * 0.95, f"Pair {index + 1} of {pairs}: {message}")

        step(0, method_name(method, dis_preset))
        results.append(
            estimate_flow(frames[index], frames[index + 1], method, dis_preset=dis_preset, cache=cache, progress=step)
        )
    if progress:
        progress(0.96, "Writing the video")
    flows = [r.flow for r in results]
    scale = color_scale(flows)
    output = [
        side_by_side(frame, render.add_flow_legend(render.flow_to_color(flow, scale), scale))
        for frame, flow in zip(frames, flows, strict=False)
    ]
    fps = max(clip.fps / frame_step, 1.0)
    video = write_mp4(out_dir / f"flow-{method if method != 'dis' else 'dis-' + dis_preset}.mp4", output, fps)
    magnitudes = [float(render.flow_magnitude(flow).mean()) for flow in flows]
    info = {
        "method": method,
        "name": method_name(method, dis_preset),
        "frames": len(clip.frames),
        "frame_step": frame_step,
        "pairs": pairs,
        "fps": round(clip.fps, 3),
        "output_fps": round(fps, 3),
        "size": {"width": width, "height": height},
        "original_size": {"width": clip.original_size[0], "height": clip.original_size[1]},
        "color_scale_px": round(scale, 4),
        "mean_magnitude_per_pair": [round(m, 4) for m in magnitudes],
        "runtime_ms": round(sum(r.runtime_ms for r in results), 2),
        "load_ms": results[0].load_ms,
        "device": results[0].device,
        "tiles_per_pair": results[0].tiles,
    }
    if progress:
        progress(1.0, "Done")
    return VideoFlow(video, info)
