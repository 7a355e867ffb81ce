"""OpenCV's classical optical flow: Dense Inverse Search and Farneback, which need no weights.

Frames are uint8 (H, W, 3) RGB or (H, W) grey; flow is float32 (H, W, 2) holding (dx, dy) in pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from core import checks

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
CLASSICAL = {"dis": "DIS", "farneback": "Farneback"}
"""Method key -> display name."""


def validate_preset(preset: object) -> str:
    return checks.choice(preset, "DIS preset", DIS_PRESETS)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def dis_flow(frame1: np.ndarray, frame2: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV's Dense Inverse Search flow (Kroeger et al., 2016)."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[validate_preset(preset)])
    return dis.calc(_gray(frame1), _gray(frame2), None)


def farneback_flow(frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
    """OpenCV's Farneback polynomial-expansion flow."""
    return cv2.calcOpticalFlowFarneback(
        _gray(frame1), _gray(frame2), None, pyr_scale=0.5, levels=3, winsize=21, iterations=3,
        poly_n=5, poly_sigma=1.1, flags=0,
    )  # fmt: skip
