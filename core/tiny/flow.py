"""A tiny Perceiver IO optical flow model."""

from __future__ import annotations

from typing import Any

from core.flow.perceiver import TILE
from core.tiny.common import TINY_PERCEIVER


def tiny_perceiver_flow() -> tuple[Any]:
    """A tiny PerceiverForOpticalFlow config that keeps the real 368x496 tile (the Fourier position
    encodings and the decoder's output shape are built for exactly that size). d_model must be 322:
    the 64 channels of the patch projection plus 258 of the position encoding. No preprocessor:
    the checkpoint ships none, core.flow prepares the inputs."""
    from transformers import PerceiverConfig

    config = PerceiverConfig(d_model=322, train_size=list(TILE), **TINY_PERCEIVER)
    return (config,)
