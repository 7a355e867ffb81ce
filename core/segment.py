"""Semantic, instance and panoptic segmentation: preprocess -> forward -> the processor's own
post-processing -> one label map with a table of segments."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core import checks
from core.backend import runs_in
from core.errors import InputError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache, ms
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for
from core.render import NO_SEGMENT, colour_map, hex_colour, index_png, overlay, palette
from core.settings import get_settings

TASK = "segment"
MODES = ("semantic", "instance", "panoptic")


@dataclass(frozen=True)
class Thresholds:
    score: float = 0.5
    """Instance and panoptic: segments whose class probability is below this are dropped."""
    mask: float = 0.5
    """Panoptic: a pixel belongs to a segment's mask where the mask probability is above this."""
    overlap: float = 0.8
    """Panoptic: a segment is kept only if this share of its mask survives overlaps with others."""


@dataclass(frozen=True)
class Segment:
    id: int
    label: str
    label_id: int
    score: float | None
    area: int
    area_percent: float
    bbox: tuple[int, int, int, int]
    """(x0, y0, x1, y1) in pixels of the original image, x1 and y1 exclusive."""
    fused: bool = False


@dataclass
class SegmentationResult:
    model: str
    mode: str
    label_map: np.ndarray
    """(H, W) uint8 at the original size: 0 where no segment, else a `Segment.id`."""
    segments: list[Segment]
    """Sorted by area, largest first; ids are 1..N in that order."""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def colours(self) -> np.ndarray:
        """Colour of each id: by class in semantic mode (stable across images), by segment otherwise."""
        colours = np.zeros((256, 3), dtype=np.uint8)
        for segment in self.segments:
            colours[segment.id] = palette()[1 + segment.label_id % 255 if self.mode == "semantic" else segment.id]
        return colours

    def to_dict(self) -> dict[str, Any]:
        height, width = self.label_map.shape
        return {
            "model": self.model,
            "mode": self.mode,
            "image_size": [width, height],
            "segments": [asdict(segment) | {"bbox": list(segment.bbox)} for segment in self.segments],
            "timings_ms": self.timings_ms,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def label_map_png(self) -> bytes:
        buffer = io.BytesIO()
        index_png(self.label_map, self.colours).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def colour_image(self) -> np.ndarray:
        return colour_map(self.label_map, self.colours)

    def overlay_image(self, image: Image.Image, opacity: float = 0.6) -> np.ndarray:
        return overlay(np.asarray(image.convert("RGB")), self.label_map, self.colours, opacity)


def result_from_dict(data: dict[str, Any], label_map: np.ndarray) -> SegmentationResult:
    """Rebuild a result from `to_dict()` and its label map (e.g. read back from the index PNG)."""
    segments = [Segment(**(item | {"bbox": tuple(item["bbox"])})) for item in data["segments"]]
    return SegmentationResult(data["model"], data["mode"], label_map, segments, dict(data.get("timings_ms", {})))


def legend_names(result: SegmentationResult) -> dict[int, str]:
    """A distinct display name per segment id: the label, numbered when a label occurs twice."""
    totals: dict[str, int] = {}
    for segment in result.segments:
        totals[segment.label] = totals.get(segment.label, 0) + 1
    seen: dict[str, int] = {}
    names = {}
    for segment in result.segments:
        seen[segment.label] = seen.get(segment.label, 0) + 1
        label = segment.label.strip()
        names[segment.id] = label if totals[segment.label] == 1 else f"{label} #{seen[segment.label]}"
    return names


def annotations(
    result: SegmentationResult, image: Image.Image, opacity: float, max_side: int = 1024
) -> tuple[np.ndarray, list[tuple[np.ndarray, str]], dict[str, str]]:
    """What gr.AnnotatedImage shows: a display-sized photo, one (mask * opacity, name) per segment
    and the colour of each name."""
    opacity = checks.number(opacity, "Opacity", 0, 1)
    height, width = work_size(*result.label_map.shape, max_side)
    photo = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    label_map = np.asarray(Image.fromarray(result.label_map).resize((width, height), Image.Resampling.NEAREST))
    names = legend_names(result)
    colours = result.colours
    masks = [((label_map == s.id).astype(np.float32) * opacity, names[s.id]) for s in result.segments]
    return photo, masks, {names[s.id]: hex_colour(colours[s.id]) for s in result.segments}


def segment_models() -> list[ModelSpec]:
    return specs_for(TASK)


def validate_request(model_key: str, mode: str, thresholds: Thresholds) -> ModelSpec:
    spec = get_spec(model_key, TASK)
    if mode not in spec.segment_modes:
        raise InputError(f"{spec.name} does {' and '.join(spec.segment_modes)} segmentation, not {str(mode)[:30]!r}.")
    for name, value in asdict(thresholds).items():
        checks.number(value, f"The {name} threshold", 0, 1)
    return spec


def work_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The size masks are computed at: the original, or scaled down so its longer side is `max_side`."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _float32(outputs: Any) -> Any:
    for key, value in outputs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            outputs[key] = value.float()
    return outputs


def _post_process(
    processor: Any, outputs: Any, mode: str, size: tuple[int, int], thresholds: Thresholds, fuse: set[int]
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Run the processor's own post-processing; return an id map and [{id, label_id, score, fused}]."""
    if mode == "semantic":
        classes = processor.post_process_semantic_segmentation(outputs, target_sizes=[size])[0]
        present = torch.unique(classes).tolist()
        return classes + 1, [{"id": c + 1, "label_id": c, "score": None, "fused": False} for c in present]
    if mode == "instance":
        result = processor.post_process_instance_segmentation(outputs, threshold=thresholds.score, target_sizes=[size])[
            0
        ]
    else:
        result = processor.post_process_panoptic_segmentation(
            outputs,
            threshold=thresholds.score,
            mask_threshold=thresholds.mask,
            overlap_mask_area_threshold=thresholds.overlap,
            label_ids_to_fuse=fuse,
            target_sizes=[size],
        )[0]
    segments = [
        {"id": s["id"], "label_id": s["label_id"], "score": s["score"], "fused": s.get("was_fused", False)}
        for s in result["segments_info"]
    ]
    return result["segmentation"], segments


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _build_result(
    key: str,
    mode: str,
    id_map: torch.Tensor,
    raw_segments: list[dict[str, Any]],
    id2label: dict[int, str],
    original: tuple[int, int],
) -> SegmentationResult:
    """Renumber segments 1..N by area (largest first) into a uint8 map at the original size."""
    ids = id_map.to(torch.int64).cpu().numpy()
    areas = {s["id"]: int(np.count_nonzero(ids == s["id"])) for s in raw_segments}
    kept = sorted((s for s in raw_segments if areas[s["id"]] > 0), key=lambda s: (-areas[s["id"]], s["id"]))
    lookup = np.zeros(int(max(ids.max(initial=0), max((s["id"] for s in kept), default=0))) + 2, dtype=np.uint8)
    for new_id, raw in enumerate(kept, start=1):
        lookup[raw["id"]] = new_id
    label_map = lookup[np.clip(ids, 0, len(lookup) - 1)]
    label_map[ids < 0] = NO_SEGMENT
    if label_map.shape != original:
        label_map = np.asarray(Image.fromarray(label_map).resize(original[::-1], Image.Resampling.NEAREST))
    total = label_map.size
    segments = []
    for new_id, raw in enumerate(kept, start=1):
        mask = label_map == new_id
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        score = None if raw["score"] is None else round(float(raw["score"]), 6)
        segments.append(
            Segment(
                id=new_id,
                label=id2label[raw["label_id"]],
                label_id=int(raw["label_id"]),
                score=score,
                area=area,
                area_percent=round(100.0 * area / total, 4),
                bbox=_bbox(mask),
                fused=bool(raw["fused"]),
            )
        )
    return SegmentationResult(key, mode, label_map, segments)


@runs_in("segment")
def segment(
    image: Image.Image,
    model_key: str,
    mode: str = "semantic",
    thresholds: Thresholds | None = None,
    *,
    fuse_stuff: bool = True,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> SegmentationResult:
    """Segment an RGB image with a registry model in one of the modes it supports.

    Masks are computed at a bounded size (PLAYGROUND_SEGMENT_MAX_SIDE) and brought back to the
    image's size. `fuse_stuff` (panoptic) merges all regions of each stuff class into one segment.
    """
    thresholds = thresholds or Thresholds()
    spec = validate_request(model_key, mode, thresholds)
    if progress:
        progress(0.0, f"Loading {spec.name}")
    loaded, was_loaded = (cache or get_cache()).get(spec.key)
    start = time.perf_counter()
    inputs = preprocess(loaded, image)
    preprocessed = time.perf_counter()
    if progress:
        progress(0.3, f"Running {spec.name}")
    outputs = forward(loaded, inputs)
    inferred = time.perf_counter()
    if progress:
        progress(0.7, "Post-processing")
    result = postprocess(loaded, outputs, image, mode, thresholds, fuse_stuff)
    done = time.perf_counter()
    result.timings_ms = {
        "preprocess": ms(preprocessed - start),
        "inference": ms(inferred - preprocessed),
        "postprocess": ms(done - inferred),
    }
    if was_loaded:
        result.timings_ms["load"] = round(loaded.load_seconds * 1000, 1)
    if progress:
        progress(1.0, "Done")
    return result


def preprocess(loaded: LoadedModel, image: Image.Image) -> dict[str, torch.Tensor]:
    """The image processor's inputs, on the model's device (floating ones in its dtype)."""
    inputs = loaded.processor(images=image, return_tensors="pt")
    return {
        k: v.to(loaded.device, loaded.dtype) if v.is_floating_point() else v.to(loaded.device)
        for k, v in inputs.items()
    }


def forward(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> Any:
    """The model's outputs, in float32 for post-processing."""
    with torch.inference_mode():
        return _float32(loaded.model(**inputs))


def postprocess(
    loaded: LoadedModel,
    outputs: Any,
    image: Image.Image,
    mode: str,
    thresholds: Thresholds,
    fuse_stuff: bool,
) -> SegmentationResult:
    """The processor's own post-processing for `mode` at a bounded size, then one label map at the
    image's size and the segments table."""
    spec = loaded.spec
    size = work_size(image.height, image.width, get_settings().segment_max_side)
    fuse = set(spec.stuff_label_ids) if fuse_stuff and mode == "panoptic" else set()
    with torch.inference_mode():
        id_map, raw_segments = _post_process(loaded.processor, outputs, mode, size, thresholds, fuse)
    return _build_result(
        spec.key, mode, id_map, raw_segments, loaded.model.config.id2label, (image.height, image.width)
    )
