"""What VisualBERT's quick answers return, and the detector's regions kept per photo.

Boxes are (x0, y0, x1, y1) in the photo's pixels; region features are float32 on the CPU, (regions, 2048)
for the real detector.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from core.lazy import torch
from core.registry import get_spec

DETECTOR = "frcnn-vg"
ANSWERER = "visualbert-vqa"
REGION_CACHE_SIZE = 32


@dataclass(frozen=True)
class Region:
    box: tuple[float, float, float, float]
    """(x0, y0, x1, y1) in the photo's pixels."""
    object: str
    attribute: str
    score: float
    """The object's probability (background excluded)."""
    attribute_score: float
    object_id: int
    attribute_id: int

    @property
    def label(self) -> str:
        """ "attribute object", e.g. "red cup"."""
        return f"{self.attribute} {self.object}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["box"] = list(self.box)
        return data


@dataclass
class PhotoRegions:
    """What the detector found in one photo: its regions (best first) and their features."""

    regions: list[Region]
    features: torch.Tensor
    """(regions, feature size) float32 on the CPU, in the order of `regions`."""
    image_size: tuple[int, int]
    nms_threshold: float
    min_detections: int
    score_threshold: float
    """The detector's SCORE_THRESH_TEST: the default display threshold."""
    device: str


@dataclass
class Answer:
    answer: str
    score: float


@dataclass
class DetectResult:
    photo: PhotoRegions
    detect_ms: float | None
    """None when the regions came from the cache."""
    load_ms: float | None
    device: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "regions": [r.to_dict() for r in self.photo.regions],
            "image_size": list(self.photo.image_size),
            "score_threshold": self.photo.score_threshold,
            "timings_ms": {"detect": self.detect_ms, "load": self.load_ms},
            "regions_from_cache": self.detect_ms is None,
            "notes": self.notes,
            "model": get_spec(DETECTOR).hub_id,
            "device": self.device,
        }


@dataclass
class VqaResult:
    question: str
    answers: list[Answer]
    detection: DetectResult
    answer_ms: float
    load_ms: float | None
    question_tokens: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        regions = self.detection.to_dict()
        return {
            "question": self.question,
            "answers": [asdict(a) for a in self.answers],
            "regions": regions["regions"],
            "image_size": regions["image_size"],
            "score_threshold": regions["score_threshold"],
            "timings_ms": {
                "detect": self.detection.detect_ms,
                "answer": self.answer_ms,
                "load_detector": self.detection.load_ms,
                "load_vqa": self.load_ms,
            },
            "regions_from_cache": self.detection.detect_ms is None,
            "question_tokens": self.question_tokens,
            "notes": self.detection.notes + self.notes,
            "models": {"detector": get_spec(DETECTOR).hub_id, "vqa": get_spec(ANSWERER).hub_id},
            "device": self.detection.device,
        }


def photo_key(image: Image.Image) -> str:
    """A digest of the decoded pixels (the same photo uploaded twice, under any name, has one key)."""
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class RegionCache:
    """The detector's output for the last `size` photos, by detector key and photo content."""

    def __init__(self, size: int = REGION_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], PhotoRegions] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> PhotoRegions | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], photo: PhotoRegions) -> None:
        with self._lock:
            self._items[key] = photo
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_region_cache = RegionCache()


def get_region_cache() -> RegionCache:
    return _region_cache
