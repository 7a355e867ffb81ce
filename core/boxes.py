"""Box geometry of a Faster R-CNN in plain torch: anchors, box decoding, clipping, non-maximum
suppression and RoI max pooling.

torchvision's compiled operators (`torchvision.ops.nms`, `RoIPool`) are not available with the CPU
torch this project installs, so these follow their definitions (detectron2's conventions: boxes are
(x0, y0, x1, y1) in continuous pixel coordinates, areas without the old "+1") and tests hold them to
those definitions on hand-made boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.lazy import F, torch

DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)
"""Largest log-scale a decoded box may grow by (a 16-pixel box to 1000 pixels), as in detectron2."""


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
    """(len(sizes) * len(aspect_ratios), 4) anchors centred on (0, 0): for each size (outer) and
    aspect ratio h / w (inner), a box of area size**2."""
    anchors = []
    for size in sizes:
        area = float(size) ** 2
        for ratio in aspect_ratios:
            width = math.sqrt(area / ratio)
            height = ratio * width
            anchors.append([-width / 2, -height / 2, width / 2, height / 2])
    return torch.tensor(anchors, dtype=torch.float32)


def grid_anchors(base: torch.Tensor, grid: tuple[int, int], stride: int, offset: float = 0.0) -> torch.Tensor:
    """Every anchor of `base` placed at every cell of a feature map of `grid` = (height, width) cells,
    `stride` pixels apart, starting at offset * stride: (height * width * A, 4), cell-major (row by
    row), the A anchors of a cell together, the order of the RPN's outputs."""
    height, width = grid
    xs = torch.arange(width, dtype=torch.float32, device=base.device) * stride + offset * stride
    ys = torch.arange(height, dtype=torch.float32, device=base.device) * stride + offset * stride
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)) * 2, dim=1)
    return (shifts[:, None, :] + base[None, :, :].to(torch.float32)).reshape(-1, 4)


def apply_deltas(
    deltas: torch.Tensor,
    boxes: torch.Tensor,
    weights: Sequence[float],
    scale_clamp: float = DEFAULT_SCALE_CLAMP,
) -> torch.Tensor:
    """Decode (dx, dy, dw, dh) deltas, divided by `weights`, relative to `boxes`: the centre moves by
    (dx * width, dy * height), the size is scaled by exp(dw), exp(dh) (clamped at `scale_clamp`).

    deltas: (N, 4 * K), K boxes per row (one per class for class-specific regression); boxes: (N, 4).
    Returns (N, 4 * K)."""
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    centre_x = boxes[:, 0] + 0.5 * widths
    centre_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = (deltas[:, 2::4] / ww).clamp(max=scale_clamp)
    dh = (deltas[:, 3::4] / wh).clamp(max=scale_clamp)
    x = dx * widths[:, None] + centre_x[:, None]
    y = dy * heights[:, None] + centre_y[:, None]
    half_w = 0.5 * torch.exp(dw) * widths[:, None]
    half_h = 0.5 * torch.exp(dh) * heights[:, None]
    decoded = torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=2)
    return decoded.reshape(deltas.shape)


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes (N, 4) clipped to an image of `size` = (height, width): x to [0, width], y to [0, height]."""
    if not torch.isfinite(boxes).all():
        raise ValueError("boxes contain infinite or NaN values")
    height, width = size
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


def nonempty(boxes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Which boxes are wider and taller than `threshold` (a boolean mask)."""
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of `a` (N, 4) with every box of `b` (M, 4): (N, M).
    Areas are (x1 - x0) * (y1 - y0); two empty boxes have IoU 0."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


NMS_CHUNK = 1024
"""Boxes compared with each other in one block (a CHUNK x CHUNK overlap matrix)."""


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression, as torchvision.ops.nms defines it: take boxes by decreasing
    score (ties in input order), keep one, drop every later box whose IoU with it is above
    `iou_threshold`, repeat. Returns the indices kept (int64), by decreasing score; with `max_keep`,
    only the first max_keep of them (the same as cutting the full answer, found sooner).

    Boxes are taken in blocks of NMS_CHUNK by score: a block first loses the boxes that overlap one
    already kept, then is walked in order with its own overlap matrix."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order].float()
    keep: list[int] = []
    for start in range(0, len(ranked), NMS_CHUNK):
        block = ranked[start : start + NMS_CHUNK]
        alive = torch.ones(len(block), dtype=torch.bool, device=block.device)
        if keep:
            alive &= ~(box_iou(block, ranked[keep]) > iou_threshold).any(dim=1)
        overlaps = (box_iou(block, block) > iou_threshold).cpu().numpy()
        alive_now = alive.cpu().numpy()
        for j in range(len(block)):
            if not alive_now[j]:
                continue
            keep.append(start + j)
            if len(keep) == max_keep:
                return order[keep]
            alive_now[j + 1 :] &= ~overlaps[j, j + 1 :]
    return order[keep]


def _bins(start: torch.Tensor, length: torch.Tensor, pooled: int, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RoIPool's bins along one axis for each RoI: [floor(i * size), ceil((i + 1) * size)) + start with
    size = length / pooled in float32 (as torchvision computes it), clipped to [0, limit]."""
    size = length.to(torch.float32) / pooled
    index = torch.arange(pooled, dtype=torch.float32)
    lower = torch.floor(index[None, :] * size[:, None]).to(torch.int64) + start[:, None]
    upper = torch.ceil((index[None, :] + 1) * size[:, None]).to(torch.int64) + start[:, None]
    return lower.clamp(0, limit), upper.clamp(0, limit)


def roi_pool(
    features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """Max pooling of regions of interest, as torchvision.ops.roi_pool (Fast R-CNN's RoIPool) defines it.

    features: (N, C, H, W); rois: (R, 5) rows of (batch index, x0, y0, x1, y1) in image pixels.
    A region spans columns round(x0 * scale) .. round(x1 * scale) inclusive (rounded half away from
    zero, at least one cell) and is cut into output_size bins; each output is the largest value in its
    bin, 0 for a bin that lies outside the feature map. Returns (R, C, *output_size)."""
    pooled_h, pooled_w = output_size
    height, width = features.shape[-2:]
    count = rois.shape[0]
    out = features.new_zeros((count, features.shape[1], pooled_h, pooled_w))
    if count == 0:
        return out
    coords = rois[:, 1:].detach().to("cpu", torch.float32) * spatial_scale  # bin bounds on the CPU
    rounded = (torch.sign(coords) * torch.floor(coords.abs() + 0.5)).to(torch.int64)  # C's round()
    x0, y0, x1, y1 = rounded.unbind(1)
    roi_w = (x1 - x0 + 1).clamp(min=1)
    roi_h = (y1 - y0 + 1).clamp(min=1)
    rows_lo, rows_hi = _bins(y0, roi_h, pooled_h, height)
    cols_lo, cols_hi = _bins(x0, roi_w, pooled_w, width)
    batch = rois[:, 0].detach().to("cpu", torch.int64)
    for r in range(count):
        top, bottom = int(rows_lo[r, 0]), int(rows_hi[r, -1])
        left, right = int(cols_lo[r, 0]), int(cols_hi[r, -1])
        if bottom <= top or right <= left:
            continue  # the whole region lies outside the feature map
        crop = features[int(batch[r]), :, top:bottom, left:right]
        out[r] = _pool_bins(crop, rows_lo[r] - top, rows_hi[r] - top, cols_lo[r] - left, cols_hi[r] - left)
    return out


def _pool_bins(
    crop: torch.Tensor, rows_lo: torch.Tensor, rows_hi: torch.Tensor, cols_lo: torch.Tensor, cols_hi: torch.Tensor
) -> torch.Tensor:
    """Max of `crop` (C, h, w) over each (row bin, column bin); 0 for empty bins. When the bins are
    those of adaptive max pooling over the crop (almost always), one adaptive_max_pool2d call."""
    pooled_h, pooled_w = len(rows_lo), len(cols_lo)
    h, w = crop.shape[-2:]
    if _adaptive(rows_lo, rows_hi, h) and _adaptive(cols_lo, cols_hi, w):
        return F.adaptive_max_pool2d(crop[None], (pooled_h, pooled_w))[0]
    by_column = crop.new_zeros((crop.shape[0], h, pooled_w))
    filled_columns = cols_hi > cols_lo
    for j in range(pooled_w):
        if filled_columns[j]:
            by_column[:, :, j] = crop[:, :, int(cols_lo[j]) : int(cols_hi[j])].amax(dim=2)
    out = crop.new_zeros((crop.shape[0], pooled_h, pooled_w))
    for i in range(pooled_h):
        if rows_hi[i] > rows_lo[i]:
            out[:, i, :] = by_column[:, int(rows_lo[i]) : int(rows_hi[i]), :].amax(dim=1)
    out[:, :, ~filled_columns] = 0
    return out


def _adaptive(lower: torch.Tensor, upper: torch.Tensor, size: int) -> bool:
    """Whether bins equal adaptive pooling's over `size` cells: [floor(i * size / n), ceil((i + 1) * size / n))."""
    n = len(lower)
    index = torch.arange(n)
    return bool(
        torch.equal(lower, torch.div(index * size, n, rounding_mode="floor"))
        and torch.equal(upper, torch.div((index + 1) * size + n - 1, n, rounding_mode="floor"))
    )
