"""The Visual Genome Faster R-CNN that VisualBERT's and LXMERT's demos use to find object regions
(unc-nlp/frcnn-vg-finetuned), written in plain torch.

The architecture is the one of transformers' research-project demo (`modeling_frcnn.py` of the LXMERT
and VisualBERT examples), itself a port of the bottom-up-attention Caffe model: a ResNet-101 "C4"
backbone (stem, res2-res4), a region proposal network on res4, RoI max pooling at 1/16 into 14 x 14,
the res5 stage run on each region (first stride 1 and dilated 3 x 3 convolutions, "RES5HALVE: false"),
the mean over the 14 x 14 cells as the region's 2048-d feature, and heads for 1600 objects (+
background), class-specific boxes, and 400 attributes (+ "no attribute") predicted from the feature
and an embedding of the object class. Module names follow that port, so the Hub's
`pytorch_model.bin` loads by name; every size comes from the checkpoint's `config.yaml`.

The class behaves like a transformers model for the app's loader: `from_pretrained(folder or hub
id)` reads config.yaml and pytorch_model.bin, `save_pretrained(folder)` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import boxes as box_ops
from core.lazy import F, torch

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "pytorch_model.bin"
BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
"""Bottleneck blocks in res2..res5 for each ResNet depth."""
MIN_PADDED_SIDE = 64
"""A resized photo is padded (bottom and right, with the mean colour) to at least this many pixels a
side, so that a very thin photo still leaves the stride-16 feature map a cell."""
ROI_CHUNK = 64
"""Regions run through res5 this many at a time (peak memory; the result is the same)."""


class FrcnnConfig(Mapping[str, Any]):
    """The detector's config.yaml as nested mappings. Keys are read case-insensitively (the demo's
    Config class answers `cfg.max_detections` and `cfg.MAX_DETECTIONS` alike): they are stored upper case."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = {
            str(key).upper(): FrcnnConfig(value) if isinstance(value, Mapping) else value for key, value in data.items()
        }

    def __getitem__(self, key: str) -> Any:
        return self._data[key.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get_path(self, path: str) -> Any:
        """A dotted path, e.g. "INPUT.MIN_SIZE_TEST"; KeyError names the path when absent."""
        value: Any = self
        for part in path.split("."):
            if not isinstance(value, FrcnnConfig) or part.upper() not in value._data:
                raise KeyError(f"config.yaml has no {path}")
            value = value[part]
        return value

    def to_dict(self) -> dict[str, Any]:
        return {key: value.to_dict() if isinstance(value, FrcnnConfig) else value for key, value in self._data.items()}

    @classmethod
    def from_yaml(cls, path: str | Path) -> FrcnnConfig:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{Path(path).name} is not a mapping of settings")
        return cls(data)

    def save_yaml(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=True), encoding="utf-8")

    @property
    def feature_size(self) -> int:
        """Channels of a region feature: res5's output, 8 x res2's."""
        return int(self.get_path("RESNETS.RES2_OUT_CHANNELS")) * 8


# --- the network ----------------------------------------------------------------------------------


class ConvNorm(torch.nn.Conv2d):
    """A bias-free convolution followed by batch norm (`<name>.weight`, `<name>.norm.*`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=False, **kwargs)
        self.norm = torch.nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class Bottleneck(torch.nn.Module):
    """1 x 1 -> 3 x 3 -> 1 x 1 with a projection shortcut when the channels change."""

    def __init__(
        self, in_channels: int, out_channels: int, bottleneck: int, stride: int, stride_in_1x1: bool, dilation: int = 1
    ) -> None:
        super().__init__()
        self.shortcut = ConvNorm(in_channels, out_channels, 1, stride=stride) if in_channels != out_channels else None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck, 1, stride=stride_1x1)
        self.conv2 = ConvNorm(bottleneck, bottleneck, 3, stride=stride_3x3, padding=dilation, dilation=dilation)
        self.conv3 = ConvNorm(bottleneck, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


def _stage(
    blocks: int, in_channels: int, out_channels: int, bottleneck: int, first_stride: int, stride_in_1x1: bool
) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        *(
            Bottleneck(
                in_channels if i == 0 else out_channels,
                out_channels,
                bottleneck,
                first_stride if i == 0 else 1,
                stride_in_1x1,
            )
            for i in range(blocks)
        )
    )


class Stem(torch.nn.Module):
    """7 x 7 stride-2 convolution and 3 x 3 stride-2 max pooling (Caffe's: no padding, rounding up)."""

    def __init__(self, out_channels: int, caffe_maxpool: bool) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, out_channels, 7, stride=2, padding=3)
        self.caffe_maxpool = caffe_maxpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        if self.caffe_maxpool:
            return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class Backbone(torch.nn.Module):
    """ResNet stem and res2..res4 (stride 16)."""

    def __init__(self, config: FrcnnConfig) -> None:
        super().__init__()
        resnet = config["RESNETS"]
        if str(resnet["NORM"]).upper() != "BN":
            raise ValueError(f"RESNETS.NORM {resnet['NORM']!r} is not supported (only BN)")
        if int(resnet["NUM_GROUPS"]) != 1:
            raise ValueError("RESNETS.NUM_GROUPS other than 1 is not supported")
        self.stem = Stem(int(resnet["STEM_OUT_CHANNELS"]), bool(config["MODEL"].get("MAX_POOL", False)))
        counts = BLOCKS_PER_STAGE[int(resnet["DEPTH"])]
        in_channels = int(resnet["STEM_OUT_CHANNELS"])
        out_channels = int(resnet["RES2_OUT_CHANNELS"])
        bottleneck = int(resnet["NUM_GROUPS"]) * int(resnet["WIDTH_PER_GROUP"])
        stride_in_1x1 = bool(resnet["STRIDE_IN_1X1"])
        for index, name in enumerate(("res2", "res3", "res4")):
            stage = _stage(counts[index], in_channels, out_channels, bottleneck, 1 if index == 0 else 2, stride_in_1x1)
            self.add_module(name, stage)
            in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res4(self.res3(self.res2(self.stem(x))))


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
        self.res5 = _stage(3, in_channels, out_channels, bottleneck, 2, bool(resnet["STRIDE_IN_1X1"]))
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


@dataclass
class Detections:
    """Regions kept after non-maximum suppression, best first; boxes in resized-image pixels."""

    boxes: torch.Tensor
    object_ids: torch.Tensor
    object_scores: torch.Tensor
    attribute_ids: torch.Tensor
    attribute_scores: torch.Tensor
    features: torch.Tensor
    nms_threshold: float
    proposals: int


class VisualGenomeFasterRCNN(torch.nn.Module):
    """The whole detector. `detect(pixel_values, size)` runs it on one preprocessed image."""

    config_name = CONFIG_NAME
    weights_name = WEIGHTS_NAME

    def __init__(self, config: FrcnnConfig | Mapping[str, Any]) -> None:
        super().__init__()
        self.config = config if isinstance(config, FrcnnConfig) else FrcnnConfig(config)
        self.backbone = Backbone(self.config)
        self.proposal_generator = RPN(self.config, self.backbone.out_channels)
        self.roi_heads = Res5ROIHeads(self.config, self.backbone.out_channels)
        test = self.config["ROI_HEADS"]["NMS_THRESH_TEST"]
        self.nms_thresholds = [float(t) for t in (test if isinstance(test, list) else [test])]
        self.box_weights = tuple(float(w) for w in self.config["ROI_BOX_HEAD"]["BBOX_REG_WEIGHTS"])
        self.min_detections = int(self.config["MIN_DETECTIONS"])
        self.max_detections = int(self.config["MAX_DETECTIONS"])

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.stem.conv1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.backbone.stem.conv1.weight.device

    def forward(self, pixel_values: torch.Tensor, image_size: tuple[int, int]) -> Detections:
        return self.detect(pixel_values, image_size)

    @torch.inference_mode()
    def detect(self, pixel_values: torch.Tensor, image_size: tuple[int, int]) -> Detections:
        """pixel_values: (1, 3, H, W), normalised and possibly padded; image_size: the (height, width)
        of the photo inside it."""
        features = self.backbone(pixel_values.to(self.device, self.dtype))
        proposals, _ = self.proposal_generator(features, image_size)
        pooled = self.roi_heads(features, proposals.to(features.dtype))
        class_logits, attribute_logits, deltas = self.roi_heads.box_predictor(pooled)
        return self.select(
            proposals, class_logits.float(), attribute_logits.float(), deltas.float(), pooled, image_size
        )

    def select(
        self,
        proposals: torch.Tensor,
        class_logits: torch.Tensor,
        attribute_logits: torch.Tensor,
        deltas: torch.Tensor,
        pooled: torch.Tensor,
        image_size: tuple[int, int],
    ) -> Detections:
        """Each proposal's best object class (background excluded) and its class-specific box, clipped;
        non-maximum suppression over those boxes at the first NMS_THRESH_TEST that keeps at least
        MIN_DETECTIONS regions (else the one that keeps most), at most MAX_DETECTIONS kept."""
        probabilities = class_logits.softmax(-1)[:, :-1]
        scores, classes = probabilities.max(-1)
        decoded = box_ops.apply_deltas(deltas, proposals, self.box_weights)
        per_class = box_ops.clip_boxes(decoded.reshape(-1, 4), image_size).reshape(len(proposals), -1, 4)
        rows = torch.arange(len(proposals), device=per_class.device)
        chosen = per_class[rows, classes if per_class.shape[1] > 1 else 0]
        attribute_scores, attributes = attribute_logits[:, :-1].softmax(-1).max(-1)
        best: tuple[torch.Tensor, float] | None = None
        for threshold in self.nms_thresholds:
            keep = box_ops.nms(chosen, scores, threshold, max_keep=self.max_detections)
            if best is None or len(keep) > len(best[0]):
                best = (keep, threshold)
            if len(keep) >= self.min_detections:
                best = (keep, threshold)
                break
        keep, threshold = best if best is not None else (torch.empty(0, dtype=torch.int64), self.nms_thresholds[-1])
        return Detections(
            boxes=chosen[keep],
            object_ids=classes[keep],
            object_scores=scores[keep],
            attribute_ids=attributes[keep],
            attribute_scores=attribute_scores[keep],
            features=pooled[keep].float(),
            nms_threshold=threshold,
            proposals=len(proposals),
        )

    @torch.no_grad()
    def settle_random_weights(self, seed: int = 0) -> None:
        """Make randomly drawn weights usable (tiny mode; never called on a checkpoint): every batch
        norm takes the statistics of a synthetic photo (batch-norm recalibration), and the output
        layers are scaled so that their outputs have the spread in OUTPUT_SPREAD on it. Without this, 23
        random residual blocks let activations grow so large that every box delta saturates and every
        region collapses to an empty box. The weights stay random: nothing is learned."""
        generator = torch.Generator().manual_seed(seed)
        size = (
            int(self.config.get_path("INPUT.MIN_SIZE_TEST")) // 2,
            int(self.config.get_path("INPUT.MAX_SIZE_TEST")) // 2,
        )
        image = torch.zeros((1, 3, *size))
        for step, spread in ((32, 45.0), (8, 30.0), (2, 20.0), (1, 10.0)):  # blobs, shapes, edges, texture
            noise = torch.randn((1, 3, size[0] // step, size[1] // step), generator=generator) * spread
            image += F.interpolate(noise, size=size, mode="bilinear", align_corners=False)
        image = image.to(self.device, self.dtype)
        norms = [m for m in self.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the calibration passes
            norm.train()
        features = self.backbone(image)
        height, width = size
        grid = torch.tensor(
            [
                [x, y, x + width / 3, y + height / 3]
                for x in (0, width / 3, 2 * width / 3)
                for y in (0, height / 3, 2 * height / 3)
            ]
        )
        rois = torch.cat([torch.zeros((len(grid), 1)), grid], dim=1).to(features.device, features.dtype)
        self.roi_heads.res5(box_ops.roi_pool(features, rois, (self.roi_heads.resolution,) * 2, 1 / 16))
        for norm in norms:
            norm.eval()
            norm.momentum = 0.1
        features = self.backbone(image)
        head = self.proposal_generator.rpn_head
        hidden = F.relu(head.conv(features))
        _scale_to(head.objectness_logits, hidden, OUTPUT_SPREAD["objectness"])
        _scale_to(head.anchor_deltas, hidden, OUTPUT_SPREAD["anchor_deltas"])
        cells = box_ops.roi_pool(features, rois, (self.roi_heads.resolution,) * 2, 1 / 16)
        pooled = self.roi_heads.res5(cells).mean(dim=(2, 3))
        predictor = self.roi_heads.box_predictor
        _scale_to(predictor.cls_score, pooled, OUTPUT_SPREAD["cls_score"])
        _scale_to(predictor.bbox_pred, pooled, OUTPUT_SPREAD["bbox_pred"])
        embedded = predictor.cls_embedding(predictor.cls_score(pooled).argmax(-1))
        attribute_input = F.relu(predictor.fc_attr(torch.cat([pooled, embedded], -1)))
        _scale_to(predictor.attr_score, attribute_input, OUTPUT_SPREAD["attr_score"])

    # --- files -------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, source: str | Path, dtype: torch.dtype | None = None) -> VisualGenomeFasterRCNN:
        """Load config.yaml and pytorch_model.bin from a folder, or from a Hub repository (through the
        Hugging Face cache; offline it reads only what is cached)."""
        config_path, weights_path = cls._files(source)
        model = cls(FrcnnConfig.from_yaml(config_path))
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_weights(state, str(source))
        if dtype is not None:
            model.to(dtype)
        return model.eval()

    @classmethod
    def load_config(cls, source: str | Path) -> FrcnnConfig:
        """The config.yaml of a folder or Hub repository."""
        return FrcnnConfig.from_yaml(cls._files(source, weights=False)[0])

    @classmethod
    def _files(cls, source: str | Path, weights: bool = True) -> tuple[Path, Path]:
        folder = Path(source)
        if folder.is_dir():
            return folder / CONFIG_NAME, folder / WEIGHTS_NAME
        from huggingface_hub import hf_hub_download

        config = Path(hf_hub_download(str(source), CONFIG_NAME))
        return config, Path(hf_hub_download(str(source), WEIGHTS_NAME)) if weights else config.with_name(WEIGHTS_NAME)

    def load_weights(self, state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
        """Load a state dict by name; every weight of the model must be there with its shape (batch-norm
        step counters excepted) and nothing else."""
        state = {_modern_name(name): tensor for name, tensor in state.items()}
        expected = self.state_dict()
        missing = [n for n in expected if n not in state and not n.endswith("num_batches_tracked")]
        unexpected = [n for n in state if n not in expected]
        wrong = [n for n in expected if n in state and tuple(state[n].shape) != tuple(expected[n].shape)]
        if missing or unexpected or wrong:
            parts = [
                f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
                for what, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                if names
            ]
            raise ValueError(
                f"The weights of {source} do not fit the detector its config.yaml describes ({'; '.join(parts)})"
            )
        self.load_state_dict(state, strict=False)

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.save_yaml(folder / CONFIG_NAME)
        torch.save(self.state_dict(), folder / WEIGHTS_NAME)


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


def _modern_name(name: str) -> str:
    """Old batch-norm names (gamma, beta) as today's (weight, bias)."""
    if name.endswith(".gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith(".beta"):
        return name[: -len("beta")] + "bias"
    return name


# --- preprocessing ----------------------------------------------------------------------------------


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
