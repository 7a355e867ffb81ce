"""Optical flow: Perceiver IO (tiled, any image size) and OpenCV's DIS and Farneback, compared side by
side, and flow over a short clip.

  perceiver.py  Perceiver IO tiling and its model wrapper
  classic.py    OpenCV's DIS and Farneback
  files.py      warping frame 2 back, the photometric error, Middlebury .flo files
  compare.py    one request: several methods on two frames, their pictures and numbers
  video.py      flow between the frames of a clip, as an mp4

Flow arrays are float32 (H, W, 2) holding (dx, dy) in pixels from frame 1 to frame 2:
frame1[y, x] ≈ frame2[y + dy, x + dx].
"""

from core.flow.classic import CLASSICAL, DIS_PRESETS, dis_flow, farneback_flow, validate_preset
from core.flow.compare import (
    MAX_STRIDE,
    MIN_SIDE,
    MIN_STRIDE,
    TASK,
    FlowComparison,
    MethodFlow,
    color_scale,
    compare_flow,
    estimate_flow,
    flow_methods,
    flow_models,
    frame_pair,
    method_name,
    validate_methods,
)
from core.flow.files import FLOW_FILE_MAGIC, photometric_error, read_flo, warp_back, write_flo
from core.flow.perceiver import (
    DEFAULT_CUDA_TILE_BATCH,
    FLOW_SCALE,
    MIN_OVERLAP,
    TILE,
    TileForward,
    coverage,
    image_patches,
    normalise,
    padded_size,
    perceiver_flow,
    perceiver_forward,
    tile_batch,
    tile_grid,
    tile_starts,
    tile_weights,
    tiled_flow,
)
from core.flow.video import MAX_FRAME_STEP, VideoFlow, side_by_side, video_flow

__all__ = [
    "CLASSICAL",
    "DEFAULT_CUDA_TILE_BATCH",
    "DIS_PRESETS",
    "FLOW_FILE_MAGIC",
    "FLOW_SCALE",
    "MAX_FRAME_STEP",
    "MAX_STRIDE",
    "MIN_OVERLAP",
    "MIN_SIDE",
    "MIN_STRIDE",
    "TASK",
    "TILE",
    "FlowComparison",
    "MethodFlow",
    "TileForward",
    "VideoFlow",
    "color_scale",
    "compare_flow",
    "coverage",
    "dis_flow",
    "estimate_flow",
    "farneback_flow",
    "flow_methods",
    "flow_models",
    "frame_pair",
    "image_patches",
    "method_name",
    "normalise",
    "padded_size",
    "perceiver_flow",
    "perceiver_forward",
    "photometric_error",
    "read_flo",
    "side_by_side",
    "tile_batch",
    "tile_grid",
    "tile_starts",
    "tile_weights",
    "tiled_flow",
    "validate_methods",
    "validate_preset",
    "video_flow",
    "warp_back",
    "write_flo",
]
