"""Checking a flow field against the frames, and saving it.

Frames are uint8 (H, W, 3) RGB; flow is float32 (H, W, 2) holding (dx, dy) in pixels from frame 1 to
frame 2: frame1[y, x] ≈ frame2[y + dy, x + dx].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FLOW_FILE_MAGIC = 202021.25
"""The first four bytes of a Middlebury .flo file, as a little-endian float32."""


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
