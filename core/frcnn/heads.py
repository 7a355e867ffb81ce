"""The heads on each region: RoI max pooling at 1/16, res5, the mean feature (2048-d for ResNet-101),
then object, box and attribute predictions."""

from __future__ import annotations

from core import boxes as box_ops
from core.frcnn.backbone import stage
from core.frcnn.config import FrcnnConfig
from core.lazy import F, torch

ROI_CHUNK = 64
"""Regions run through res5 this many at a time (peak memory; the result is the same)."""


class BoxPredictor(torch.nn.Module):
    """Object logits (classes + background last), class-specific box deltas, and attribute logits
    (attributes + "none" last) from the feature and an embedding of the most likely class."""

    def __init__(self, features: int, classes: int, attributes: int, class_agnostic: bool) -> None:
        super().__init__()
        self.cls_score = torch.nn.Linear(features, classes + 1)
        self.bbox_pred = torch.nn.Linear(features, (1 if class_agnostic else classes) * 4)
        self.cls_embedding = torch.nn.Embedding(classes + 1, features // 8)
        self.fc_attr = torch.nn.Linear(features + features // 8, features // 4)
        self.attr_score = torch.nn.Linear(features // 4, attributes + 1)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scores = self.cls_score(pooled)
        deltas = self.bbox_pred(pooled)
        embedded = self.cls_embedding(scores.argmax(-1))
        attributes = self.attr_score(F.relu(self.fc_attr(torch.cat([pooled, embedded], -1))))
        return scores, attributes, deltas


class Res5ROIHeads(torch.nn.Module):
    """RoI max pooling at 1/16 into POOLER_RESOLUTION cells, res5 on each region, the mean feature."""

    def __init__(self, config: FrcnnConfig, in_channels: int) -> None:
        super().__init__()
        resnet, head = config["RESNETS"], config["ROI_BOX_HEAD"]
        out_channels = in_channels * 2
        bottleneck = int(resnet["NUM_GROUPS"]) * int(resnet["WIDTH_PER_GROUP"]) * 8
        self.res5 = stage(3, in_channels, out_channels, bottleneck, 2, bool(resnet["STRIDE_IN_1X1"]))
        if not bool(head["RES5HALVE"]):  # the Visual Genome model keeps res5 at 1/16, dilated
            self.res5[0].conv1.stride = (1, 1)
            self.res5[0].shortcut.stride = (1, 1)
            for block in self.res5:
                block.conv2.padding = (2, 2)
                block.conv2.dilation = (2, 2)
        self.resolution = int(head["POOLER_RESOLUTION"])
        self.box_predictor = BoxPredictor(
            out_channels,
            int(config["ROI_HEADS"]["NUM_CLASSES"]),
            int(head["NUM_ATTRS"]),
            bool(head["CLS_AGNOSTIC_BBOX_REG"]),
        )

    def forward(self, features: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """The pooled feature (P, 2048) of each proposal."""
        pooled = []
        for start in range(0, len(proposals), ROI_CHUNK):
            chunk = proposals[start : start + ROI_CHUNK]
            rois = torch.cat([chunk.new_zeros((len(chunk), 1)), chunk], dim=1)
            cells = box_ops.roi_pool(features, rois, (self.resolution, self.resolution), 1 / 16)
            pooled.append(self.res5(cells).mean(dim=(2, 3)))
        if not pooled:
            return features.new_zeros((0, self.box_predictor.cls_score.in_features))
        return torch.cat(pooled)
