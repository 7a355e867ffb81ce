"""Flow between consecutive frames of a short clip, written as an mp4 of each frame beside its flow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import checks, render
from core.backend import runs_in
from core.errors import InputError
from core.flow.classic import validate_preset
from core.flow.compare import MIN_SIDE, MethodFlow, color_scale, estimate_flow, method_name, validate_methods
from core.models import ModelCache
from core.progress import ProgressFn, part
from core.settings import get_settings
from core.video import read_video, write_mp4

MAX_FRAME_STEP = 10


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two uint8 RGB images (H, W, 3) next to each other, top-aligned on white."""
    height = max(left.shape[0], right.shape[0])
    padded = [np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255) for im in (left, right)]
    return np.concatenate(padded, axis=1)


@dataclass
class VideoFlow:
    video: Path
    info: dict[str, Any]


@runs_in("flow", files=("path",))
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
    frame_step = checks.whole(frame_step, "Frame step", 1, MAX_FRAME_STEP)
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
        step = part(progress, index / pairs * 0.95, 0.95 / pairs, f"Pair {index + 1} of {pairs}: ")
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
