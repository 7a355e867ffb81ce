"""The region proposal network: anchors on the stride-16 grid, objectness and box deltas, proposals."""

from __future__ import annotations

from core import boxes as box_ops
from core.frcnn.config import FrcnnConfig
from core.lazy import F, torch


class AnchorGenerator(torch.nn.Module):
    """The cell anchors (stored as `cell_anchors.0`, as in the checkpoint) placed on the feature grid."""

    def __init__(self, sizes: list[float], aspect_ratios: list[float], stride: int, offset: float) -> None:
        super().__init__()
        self.cell_anchors = torch.nn.Module()
        self.cell_anchors.register_buffer("0", box_ops.cell_anchors(sizes, aspect_ratios))
        self.stride = stride
        self.offset = offset

    @property
    def base(self) -> torch.Tensor:
        return getattr(self.cell_anchors, "0")

    def forward(self, grid: tuple[int, int]) -> torch.Tensor:
        return box_ops.grid_anchors(self.base, grid, self.stride, self.offset)


class RPNHead(torch.nn.Module):
    def __init__(self, in_channels: int, hidden: int, anchors: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.objectness_logits = torch.nn.Conv2d(hidden, anchors, 1)
        self.anchor_deltas = torch.nn.Conv2d(hidden, anchors * 4, 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.relu(self.conv(features))
        return self.objectness_logits(hidden), self.anchor_deltas(hidden)


class RPN(torch.nn.Module):
    """Proposals: the anchors moved by the predicted deltas, the best PRE_NMS_TOPK_TEST by objectness,
    clipped to the image, empty ones dropped, non-maximum suppression at NMS_THRESH, the best
    POST_NMS_TOPK_TEST kept."""

    def __init__(self, config: FrcnnConfig, in_channels: int) -> None:
        super().__init__()
        anchors = config["ANCHOR_GENERATOR"]
        rpn = config["RPN"]
        sizes, ratios = anchors["SIZES"], anchors["ASPECT_RATIOS"]
        if len(sizes) != 1 or len(ratios) != 1:
            raise ValueError("only one feature map (one list of anchor sizes and aspect ratios) is supported")
        self.anchor_generator = AnchorGenerator(list(sizes[0]), list(ratios[0]), 16, float(anchors.get("OFFSET", 0.0)))
        hidden = int(config["PROPOSAL_GENERATOR"]["HIDDEN_CHANNELS"])
        self.rpn_head = RPNHead(in_channels, in_channels if hidden == -1 else hidden, len(sizes[0]) * len(ratios[0]))
        self.weights = tuple(float(w) for w in rpn["BBOX_REG_WEIGHTS"])
        self.nms_thresh = float(rpn["NMS_THRESH"])
        self.pre_nms_topk = int(rpn["PRE_NMS_TOPK_TEST"])
        self.post_nms_topk = int(rpn["POST_NMS_TOPK_TEST"])
        self.min_size = float(config["PROPOSAL_GENERATOR"]["MIN_SIZE"])

    def forward(self, features: torch.Tensor, image_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Proposal boxes (P, 4) in resized-image pixels and their objectness logits, best first."""
        logits, deltas = self.rpn_head(features)
        height, width = features.shape[-2:]
        anchors = self.anchor_generator((height, width))
        count = self.anchor_generator.base.shape[0]
        logits = logits[0].permute(1, 2, 0).reshape(-1).float()  # (H * W * A), cell-major
        deltas = deltas[0].reshape(count, 4, height, width).permute(2, 3, 0, 1).reshape(-1, 4).float()
        proposals = box_ops.apply_deltas(deltas, anchors, self.weights)
        top = torch.sort(logits, descending=True, stable=True).indices[: self.pre_nms_topk]
        proposals, logits = box_ops.clip_boxes(proposals[top], image_size), logits[top]
        kept = box_ops.nonempty(proposals, self.min_size)
        proposals, logits = proposals[kept], logits[kept]
        keep = box_ops.nms(proposals, logits, self.nms_thresh, max_keep=self.post_nms_topk)
        return proposals[keep], logits[keep]
