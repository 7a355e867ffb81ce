"""One attention request: the model's attention read for an image and drawn as maps (see the package's
docstring for what each method shows)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from core import checks, plots
from core.attention.maps import beit_maps, levit_maps, perceiver_maps, pooled
from core.attention.weights import beit_attentions, levit_attentions, perceiver_attentions
from core.backend import runs_in
from core.errors import InputError
from core.masked_image import model_view
from core.models import ModelCache, get_cache, load_for, ms
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for

TASK = "classify"
METHODS_BY_FAMILY = {
    "BEiT": ("last layer", "rollout"),
    "Perceiver": ("latents", "classifier"),
    "LeViT": ("last layer",),
}
METHODS = ("last layer", "rollout", "latents", "classifier")
VIEW_SIDE = 448
DEFAULT_OPACITY = 0.5
MAX_LAYER = 48


def attention_models() -> list[ModelSpec]:
    """The Classify tab's models whose attention this module can show, in registry order."""
    return [spec for spec in specs_for(TASK) if spec.family in METHODS_BY_FAMILY]


def parse_layer(value: Any, count: int) -> int:
    """A layer number from 1 to `count`; 0 means the last."""
    layer = checks.whole(value, "Layer", 0, MAX_LAYER)
    if layer > count:
        raise InputError(f"This model has {count} attention layers: choose a layer from 1 to {count} (0 = the last).")
    return layer or count


def parse_head(value: Any, count: int) -> int | None:
    """None for "mean", else a head number from 1 to `count`."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("mean", ""):
            return None
        if not text.isdigit():
            raise InputError(f'Head must be "mean" or a number from 1 to {count}, not {value[:20]!r}.')
        value = int(text)
    return None if value is None else checks.whole(value, "Head", 1, max(count, 1))


def parse_latents(value: Any, count: int) -> list[int]:
    """Latent numbers (0 to count - 1) from "3, 17 200" or a list; duplicates dropped."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    items = re.split(r"[\s,;\[\]]+", value.strip()) if isinstance(value, str) else list(value)
    latents = []
    for item in items:
        if item == "":
            continue
        if isinstance(item, str) and not item.isdigit():
            raise InputError(f"Latents must be whole numbers from 0 to {count - 1}, not {item[:20]!r}.")
        latents.append(checks.whole(int(item) if isinstance(item, str) else item, "A latent", 0, count - 1))
    if len(latents) > 512:
        raise InputError("Choose at most 512 latents.")
    return list(dict.fromkeys(latents))


@dataclass
class AttentionResult:
    key: str
    name: str
    family: str
    method: str
    title: str
    view: np.ndarray
    """The image as the model saw it, enlarged: (VIEW_SIDE, VIEW_SIDE, 3) uint8."""
    map: np.ndarray
    small_maps: list[tuple[np.ndarray, str]]
    small_maps_title: str
    details: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float | None] = field(default_factory=dict)

    def overlay(self, opacity: float) -> np.ndarray:
        return plots.overlay(self.view, self.map, opacity)

    def heat_map(self) -> np.ndarray:
        return plots.heat_map(self.map, self.title, "share of attention")

    def maps_picture(self) -> np.ndarray:
        return plots.maps_grid(self.small_maps, self.small_maps_title, "share of attention")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: what was shown and the map's values on its grid (sum-pooled when large)."""
        values, factor = pooled(self.map)
        return {
            "model": self.key,
            "name": self.name,
            "family": self.family,
            "method": self.method,
            "title": self.title,
            **self.details,
            "grid": list(self.map.shape),
            "map": [[float(f"{v:.6g}") for v in row] for row in values],
            "map_pooling": factor,
            "map_sum": round(float(self.map.sum()), 6),
            "small_maps": [name for _, name in self.small_maps],
            "timings_ms": self.timings_ms,
        }


@runs_in("inside")
def attention(
    image: Image.Image,
    model: str = "beit-base-224",
    layer: Any = 0,
    head: Any = "mean",
    method: str = "last layer",
    latents: Any = "",
    *,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> AttentionResult:
    """Attention maps of one Classify model for an RGB image (see the module's docstring)."""
    spec = get_spec(model, TASK)
    if spec.family not in METHODS_BY_FAMILY:
        raise InputError(f"{spec.name} has no attention maps here.")
    method = checks.choice(method, "method", METHODS)
    allowed = METHODS_BY_FAMILY[spec.family]
    if method not in allowed:
        raise InputError(f"Method {method!r} does not apply to {spec.name}. Choose one of: {', '.join(allowed)}.")
    report = progress or (lambda fraction, message: None)
    report(0.0, f"Loading {spec.name}")
    loaded, load_ms = load_for(spec.key, TASK, cache or get_cache())
    start = time.perf_counter()
    pixel_values = loaded.processor(images=image, return_tensors="pt")["pixel_values"]
    view = cv2.resize(model_view(loaded, pixel_values), (VIEW_SIDE, VIEW_SIDE), interpolation=cv2.INTER_CUBIC)
    preprocess_ms = ms(time.perf_counter() - start)
    report(0.3, "Reading the attention")
    start = time.perf_counter()
    if spec.family == "BEiT":
        attn = beit_attentions(loaded, pixel_values)
        maps = beit_maps(attn, parse_layer(layer, attn.shape[0]), parse_head(head, attn.shape[1]), method)
    elif spec.family == "Perceiver":
        encoder, decoder = perceiver_attentions(loaded, pixel_values)
        chosen = parse_latents(latents, encoder.shape[1])
        maps = perceiver_maps(encoder, decoder, parse_head(head, encoder.shape[0]), method, chosen)
    else:
        layers = levit_attentions(loaded, pixel_values)
        chosen_layer = parse_layer(layer, len(layers))
        maps = levit_maps(layers, chosen_layer, parse_head(head, layers[chosen_layer - 1].weights.shape[0]))
    inference_ms = ms(time.perf_counter() - start)
    report(1.0, "Done")
    return AttentionResult(
        key=spec.key,
        name=spec.name,
        family=spec.family,
        method=method,
        title=maps["title"],
        view=view,
        map=maps["map"].astype(np.float64),
        small_maps=maps["small"],
        small_maps_title=maps["small_title"],
        details=maps["details"],
        timings_ms={"load": load_ms, "preprocess": preprocess_ms, "inference": inference_ms},
    )
