"""Random weights made usable (tiny mode; never run on a checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import boxes as box_ops
from core.lazy import F, torch

if TYPE_CHECKING:
    from core.frcnn.model import VisualGenomeFasterRCNN

OUTPUT_SPREAD = {"objectness": 1.0, "anchor_deltas": 0.5, "cls_score": 3.0, "bbox_pred": 1.0, "attr_score": 3.0}
"""Standard deviation of each output layer's result on the calibration photo (settle_random_weights):
box deltas that move and resize boxes moderately, class scores spread enough that some regions stand out."""


def _scale_to(layer: torch.nn.Module, inputs: torch.Tensor, spread: float) -> None:
    """Scale a layer's weight and bias so that its output on `inputs` has standard deviation `spread`."""
    std = float(layer(inputs).float().std())
    if std > 0 and torch.isfinite(torch.tensor(std)):
        layer.weight.mul_(spread / std)
        if layer.bias is not None:
            layer.bias.mul_(spread / std)


@torch.no_grad()
def settle_random_weights(model: VisualGenomeFasterRCNN, seed: int = 0) -> None:
    """Make randomly drawn weights usable (tiny mode; never called on a checkpoint): every batch
    norm takes the statistics of a synthetic photo (batch-norm recalibration), and the output
    layers are scaled so that their outputs have the spread in OUTPUT_SPREAD on it. Without this, 23
    random residual blocks let activations grow so large that every box delta saturates and every
    region collapses to an empty box. The weights stay random: nothing is learned."""
    generator = torch.Generator().manual_seed(seed)
    size = (
        int(model.config.get_path("INPUT.MIN_SIZE_TEST")) // 2,
        int(model.config.get_path("INPUT.MAX_SIZE_TEST")) // 2,
    )
    image = torch.zeros((1, 3, *size))
    for step, spread in ((32, 45.0), (8, 30.0), (2, 20.0), (1, 10.0)):  # blobs, shapes, edges, texture
        noise = torch.randn((1, 3, size[0] // step, size[1] // step), generator=generator) * spread
        image += F.interpolate(noise, size=size, mode="bilinear", align_corners=False)
    image = image.to(model.device, model.dtype)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration passes
        norm.train()
    features = model.backbone(image)
    height, width = size
    grid = torch.tensor(
        [
            [x, y, x + width / 3, y + height / 3]
            for x in (0, width / 3, 2 * width / 3)
            for y in (0, height / 3, 2 * height / 3)
        ]
    )
    rois = torch.cat([torch.zeros((len(grid), 1)), grid], dim=1).to(features.device, features.dtype)
    model.roi_heads.res5(box_ops.roi_pool(features, rois, (model.roi_heads.resolution,) * 2, 1 / 16))
    for norm in norms:
        norm.eval()
        norm.momentum = 0.1
    features = model.backbone(image)
    head = model.proposal_generator.rpn_head
    hidden = F.relu(head.conv(features))
    _scale_to(head.objectness_logits, hidden, OUTPUT_SPREAD["objectness"])
    _scale_to(head.anchor_deltas, hidden, OUTPUT_SPREAD["anchor_deltas"])
    cells = box_ops.roi_pool(features, rois, (model.roi_heads.resolution,) * 2, 1 / 16)
    pooled = model.roi_heads.res5(cells).mean(dim=(2, 3))
    predictor = model.roi_heads.box_predictor
    _scale_to(predictor.cls_score, pooled, OUTPUT_SPREAD["cls_score"])
    _scale_to(predictor.bbox_pred, pooled, OUTPUT_SPREAD["bbox_pred"])
    embedded = predictor.cls_embedding(predictor.cls_score(pooled).argmax(-1))
    attribute_input = F.relu(predictor.fc_attr(torch.cat([pooled, embedded], -1)))
    _scale_to(predictor.attr_score, attribute_input, OUTPUT_SPREAD["attr_score"])
