"""The whole detector, and its files: `from_pretrained(folder or hub id)` reads config.yaml and
pytorch_model.bin, `save_pretrained(folder)` writes them, as a transformers model's would."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import boxes as box_ops
from core.frcnn.backbone import Backbone
from core.frcnn.config import CONFIG_NAME, WEIGHTS_NAME, FrcnnConfig
from core.frcnn.heads import Res5ROIHeads
from core.frcnn.proposals import RPN
from core.lazy import torch


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

    def settle_random_weights(self, seed: int = 0) -> None:
        """Make randomly drawn weights usable (tiny mode; never called on a checkpoint): see
        core.frcnn.calibration."""
        from core.frcnn.calibration import settle_random_weights

        settle_random_weights(self, seed)

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


def _modern_name(name: str) -> str:
    """Old batch-norm names (gamma, beta) as today's (weight, bias)."""
    if name.endswith(".gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith(".beta"):
        return name[: -len("beta")] + "bias"
    return name
