"""The photo as the detector reads it: resized, channels reordered, normalised, padded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.frcnn.config import FrcnnConfig
from core.lazy import F, torch

MIN_PADDED_SIDE = 64
"""A resized photo is padded (bottom and right, with the mean colour) to at least this many pixels a
side, so that a very thin photo still leaves the stride-16 feature map a cell."""


@dataclass(frozen=True)
class Preprocessed:
    pixel_values: torch.Tensor
    """(1, 3, H, W) float32: channels in INPUT.FORMAT order, minus PIXEL_MEAN, over PIXEL_STD, padded."""
    size: tuple[int, int]
    """(height, width) of the resized photo inside pixel_values."""
    scale: tuple[float, float]
    """(y, x) factors from resized pixels back to the original photo's."""


def resized_size(height: int, width: int, shortest: int, longest: int) -> tuple[int, int]:
    """The shorter side to `shortest`, unless the longer side would pass `longest` (then that side
    to `longest`); both rounded half up, as the demo's ResizeShortestEdge does."""
    scale = shortest / min(height, width)
    new_h, new_w = (shortest, scale * width) if height < width else (scale * height, shortest)
    if max(new_h, new_w) > longest:
        shrink = longest / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return max(int(new_h + 0.5), 1), max(int(new_w + 0.5), 1)


def preprocess(image: Image.Image, config: FrcnnConfig) -> Preprocessed:
    """An RGB photo as the detector reads it: resized (bilinear, on float pixels, no antialiasing)
    so that its shorter side is INPUT.MIN_SIZE_TEST and its longer side at most INPUT.MAX_SIZE_TEST;
    channels in INPUT.FORMAT order (BGR: Caffe's); minus MODEL.PIXEL_MEAN, over MODEL.PIXEL_STD."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    channels = rgb[:, :, ::-1] if str(config.get_path("INPUT.FORMAT")).upper() == "BGR" else rgb
    tensor = torch.from_numpy(np.ascontiguousarray(channels)).permute(2, 0, 1)[None]
    height, width = rgb.shape[:2]
    new_h, new_w = resized_size(
        height, width, int(config.get_path("INPUT.MIN_SIZE_TEST")), int(config.get_path("INPUT.MAX_SIZE_TEST"))
    )
    if (new_h, new_w) != (height, width):
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False)
    mean = torch.tensor([float(v) for v in config.get_path("MODEL.PIXEL_MEAN")]).view(1, 3, 1, 1)
    std = torch.tensor([float(v) for v in config.get_path("MODEL.PIXEL_STD")]).view(1, 3, 1, 1)
    tensor = (tensor - mean) / std
    pad_h, pad_w = max(MIN_PADDED_SIDE - new_h, 0), max(MIN_PADDED_SIDE - new_w, 0)
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=float(config.get("PAD_VALUE", 0.0)))
    return Preprocessed(tensor, (new_h, new_w), (height / new_h, width / new_w))
