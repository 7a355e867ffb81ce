"""Where the Classify tab's models look: attention maps of BEiT, Perceiver IO and LeViT over the image.

- BEiT (methods "last layer", "rollout"): the class token's attention over the 14 x 14 patches in one
  layer, per head and averaged over heads; and attention rollout (Abnar & Zuidema 2020): each layer's
  attention (mean over heads, or one head) mixed half and half with the identity for the residual
  connection, rows renormalised, multiplied through the layers; the class token's row of the product.
  BEiT's classifiers pool the mean of the patch tokens, not the class token: the class token's attention
  shows what the model gathers into its summary token, a proxy for where it looks.
- Perceiver IO ("latents", "classifier"): the encoder's cross-attention of its latents over the input
  positions (every pixel for the learned and Fourier models, the conv stem's grid for the conv one), as
  maps over the image: averaged over all or chosen latents, or weighted by the attention of the
  classification query over the latents at the end. The latents pass through the self-attention blocks
  in between, so the weighting reads "what the classifier drew from the slots that first looked here".
- LeViT ("last layer"): the library returns no attention, so forward hooks on its attention modules
  recompute the weights with each module's own layers (queries, keys, attention biases); per layer and
  head, the attention each position receives (the mean over queries), on the grid of its stage.

Attention weights need the eager path: SDPA returns none. The loaded model (the same object the Classify
tab uses, so no second copy is loaded and the memory budget holds) is switched to eager attention for
the duration of one call, under a lock per model, and switched back; model events run one at a time in
the app (concurrency_id "models"), so no classification runs meanwhile, and SDPA stays the path of
every other call. Perceiver attention has no SDPA path in transformers; LeViT's hooks are removed
after the call and record only in the calling thread.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from core import checks, plots
from core.backend import runs_in
from core.errors import InputError
from core.lazy import torch
from core.masked_image import model_view
from core.models import LoadedModel, ModelCache, get_cache, load_for, ms
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for

TASK = "classify"
METHODS_BY_FAMILY = {
    "BEiT": ("last layer", "rollout"),
    "Perceiver": ("latents", "classifier"),
    "LeViT": ("last layer",),
}
METHODS = ("last layer", "rollout", "latents", "classifier")
ROLLOUT_RESIDUAL = 0.5
"""Weight of the identity (the residual connection) in rollout, as in Abnar & Zuidema."""
MAX_SMALL_MAPS = 16
JSON_MAX_SIDE = 56
"""Maps larger than this per side (a Perceiver's 224 x 224 pixels) go into the JSON sum-pooled."""
VIEW_SIDE = 448
DEFAULT_OPACITY = 0.5
MAX_LAYER = 48


def attention_models() -> list[ModelSpec]:
    """The Classify tab's models whose attention this module can show, in registry order."""
    return [spec for spec in specs_for(TASK) if spec.family in METHODS_BY_FAMILY]


# --- eager attention for one call ----------------------------------------------------------------

_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.Lock:
    """One lock per model object: one attention call at a time changes or hooks it."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(model, threading.Lock())


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run the body with `model` on transformers' eager attention (which returns the weights), then put
    back the implementation it had (SDPA where supported). Holds the model's lock meanwhile."""
    with model_lock(model):
        previous = model.config._attn_implementation
        if previous != "eager":
            model.set_attn_implementation("eager")
        try:
            yield
        finally:
            if previous != "eager":
                model.set_attn_implementation(previous)


# --- attention weights of each family ----------------------------------------------------------------


def beit_attentions(loaded: LoadedModel, pixel_values: torch.Tensor) -> np.ndarray:
    """Every layer's attention of a BEiT classifier for one image: (layers, heads, tokens, tokens),
    token 0 the class token, then the patches row by row."""
    with eager_attention(loaded.model), torch.inference_mode():
        outputs = loaded.model(pixel_values=pixel_values.to(loaded.device, loaded.dtype), output_attentions=True)
    if not outputs.attentions:
        raise RuntimeError("the model returned no attention weights")
    return torch.stack([a[0].float() for a in outputs.attentions]).cpu().numpy()


def perceiver_attentions(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A Perceiver IO classifier's encoder cross-attention, (heads, latents, input positions), and the
    classification query's attention over the latents, averaged over the decoder's heads: (latents,)."""
    with model_lock(loaded.model), torch.inference_mode():
        outputs = loaded.model(inputs=pixel_values.to(loaded.device, loaded.dtype), output_attentions=True)
    cross = outputs.cross_attentions
    if not cross or len(cross) < 2:
        raise RuntimeError("the model returned no cross-attention weights")
    encoder = cross[0][0].float().cpu().numpy()
    decoder = cross[-1][0].float().mean(dim=0)[0].cpu().numpy()
    return encoder, decoder


@dataclass
class LevitLayer:
    name: str
    stage: int
    subsample: bool
    weights: np.ndarray
    """(heads, queries, keys); keys on the stage's input grid."""


def levit_weights(module: Any, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention weights (batch, heads, queries, keys) and values of one LeViT attention module
    (LevitAttention or LevitAttentionSubsample) for its input, computed with the module's own layers and
    attention biases, as its forward does."""
    from transformers.models.levit.modeling_levit import LevitAttentionSubsample

    batch, length, _ = hidden.shape
    heads, key_dim, ratio = module.num_attention_heads, module.key_dim, module.attention_ratio
    if isinstance(module, LevitAttentionSubsample):
        keys_values = module.keys_values(hidden).view(batch, length, heads, -1)
        key, value = keys_values.split([key_dim, ratio * key_dim], dim=3)
        query = module.queries(module.queries_subsample(hidden)).view(batch, -1, heads, key_dim)
    else:
        qkv = module.queries_keys_values(hidden).view(batch, length, heads, -1)
        query, key, value = qkv.split([key_dim, key_dim, ratio * key_dim], dim=3)
    query, key, value = (t.permute(0, 2, 1, 3) for t in (query, key, value))
    scores = query @ key.transpose(-2, -1) * module.scale + module.get_attention_biases(hidden.device)
    return scores.softmax(dim=-1), value


def levit_attentions(loaded: LoadedModel, pixel_values: torch.Tensor) -> list[LevitLayer]:
    """Every attention module's weights for one image, in forward order, through forward hooks that
    record only calls made by this thread and are removed afterwards."""
    from transformers.models.levit.modeling_levit import LevitAttention, LevitAttentionSubsample

    owner = threading.get_ident()
    layers: list[LevitLayer] = []

    def record(module: Any, inputs: tuple[Any, ...], output: Any, *, name: str) -> None:
        if threading.get_ident() != owner:
            return
        weights, _ = levit_weights(module, inputs[0])
        stage = re.search(r"stages\.(\d+)\.", name)
        layers.append(
            LevitLayer(
                name,
                int(stage.group(1)) + 1 if stage else 0,
                isinstance(module, LevitAttentionSubsample),
                weights[0].float().cpu().numpy(),
            )
        )

    with model_lock(loaded.model):
        handles = [
            module.register_forward_hook(functools.partial(record, name=name))
            for name, module in loaded.model.named_modules()
            if isinstance(module, LevitAttention | LevitAttentionSubsample)
        ]
        try:
            with torch.inference_mode():
                loaded.model(pixel_values=pixel_values.to(loaded.device, loaded.dtype))
        finally:
            for handle in handles:
                handle.remove()
    return layers


# --- maps ------------------------------------------------------------------------------------------


def rollout(stack: np.ndarray, residual: float = ROLLOUT_RESIDUAL) -> np.ndarray:
    """Attention rollout of (layers, tokens, tokens) row-stochastic matrices, first layer first:
    Â_l = residual * I + (1 - residual) * A_l, rows renormalised; R = Â_L ... Â_2 Â_1."""
    tokens = stack.shape[-1]
    result = np.eye(tokens, dtype=np.float64)
    for attention in stack.astype(np.float64):
        mixed = residual * np.eye(tokens) + (1 - residual) * attention
        mixed /= mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result


def side_of(positions: int) -> int:
    side = math.isqrt(positions)
    if side * side != positions:
        raise ValueError(f"{positions} positions do not form a square grid")
    return side


def pooled(grid: np.ndarray, max_side: int = JSON_MAX_SIDE) -> tuple[np.ndarray, int]:
    """The map sum-pooled by the smallest whole factor that brings both sides to `max_side` or below
    (sums are kept); unchanged when it is small enough or no factor divides it."""
    rows, cols = grid.shape
    for factor in range(1, max(rows, cols) + 1):
        if rows % factor == 0 and cols % factor == 0 and rows // factor <= max_side and cols // factor <= max_side:
            if factor == 1:
                return grid, 1
            return grid.reshape(rows // factor, factor, cols // factor, factor).sum(axis=(1, 3)), factor
    return grid, 1


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


def _beit_maps(attn: np.ndarray, layer: int, head: int | None, method: str) -> dict[str, Any]:
    layers, heads, tokens, _ = attn.shape
    side = side_of(tokens - 1)
    stack = attn[:layer]
    if method == "rollout":
        per_head = [rollout(stack[:, h]) for h in range(heads)]
        chosen = rollout(stack.mean(axis=1)) if head is None else per_head[head - 1]
        what = f"rollout through layers 1-{layer}"
    else:
        per_head = list(attn[layer - 1])
        chosen = attn[layer - 1].mean(axis=0) if head is None else attn[layer - 1, head - 1]
        what = f"layer {layer} of {layers}"
    who = "mean of heads" if head is None else f"head {head} of {heads}"
    return {
        "map": chosen[0, 1:].reshape(side, side),
        "small": [(m[0, 1:].reshape(side, side), f"head {h}") for h, m in enumerate(per_head, start=1)],
        "small_title": f"Per head ({what}): class token → patches",
        "title": f"Class token → patches, {what}, {who}",
        "details": {
            "layer": layer,
            "layers": layers,
            "head": "mean" if head is None else head,
            "heads": heads,
            "class_token_share": round(float(chosen[0, 0]), 6),
            "note": "The class token's attention over the patches; the rest of its row (class_token_share) "
            "goes to the class token itself. BEiT's classifiers pool the patch tokens' mean.",
        },
    }


def _perceiver_maps(
    encoder: np.ndarray, decoder: np.ndarray, head: int | None, method: str, latents: list[int]
) -> dict[str, Any]:
    heads, count, positions = encoder.shape
    side = side_of(positions)
    cross = encoder.mean(axis=0) if head is None else encoder[head - 1]
    ranked = [int(i) for i in np.argsort(-decoder, kind="stable")]
    if method == "classifier":
        chosen_map = decoder @ cross
        title = "Input positions weighted by the classifier's attention over the latents"
        small = ranked[:MAX_SMALL_MAPS]
        small_title = "The latents the classifier attends to most: their cross-attention"
    else:
        chosen_map = cross[latents].mean(axis=0) if latents else cross.mean(axis=0)
        title = f"Cross-attention of {'latents ' + _short_list(latents) if latents else f'all {count} latents'}"
        small = latents[:MAX_SMALL_MAPS] if latents else ranked[:MAX_SMALL_MAPS]
        small_title = (
            "The chosen latents' cross-attention"
            if latents
            else "The latents the classifier attends to most: their cross-attention"
        )
    who = "mean of heads" if head is None else f"head {head} of {heads}"
    return {
        "map": chosen_map.reshape(side, side),
        "small": [(cross[i].reshape(side, side), f"latent {i} · w {decoder[i]:.3f}") for i in small],
        "small_title": small_title,
        "title": f"{title} ({who})",
        "details": {
            "layer": None,
            "head": "mean" if head is None else head,
            "heads": heads,
            "num_latents": count,
            "latents": latents,
            "input_grid": [side, side],
            "classifier_weights_top": [{"latent": i, "weight": round(float(decoder[i]), 6)} for i in ranked[:16]],
            "note": "One cross-attention (the encoder's, before the self-attention blocks): `layer` does not "
            "apply. Weights of the classifier: the classification query's attention over the latents at the end.",
        },
    }


def _short_list(values: Sequence[int]) -> str:
    return ", ".join(map(str, values[:6])) + (" ..." if len(values) > 6 else "")


def _levit_maps(layers: list[LevitLayer], layer: int, head: int | None) -> dict[str, Any]:
    chosen = layers[layer - 1]
    heads, _, keys = chosen.weights.shape
    side = side_of(keys)
    received = chosen.weights.mean(axis=1)  # (heads, keys): attention each position receives, mean over queries
    main = received.mean(axis=0) if head is None else received[head - 1]
    kind = "subsampling attention" if chosen.subsample else "attention"
    who = "mean of heads" if head is None else f"head {head} of {heads}"
    return {
        "map": main.reshape(side, side),
        "small": [(received[h].reshape(side, side), f"head {h + 1}") for h in range(heads)],
        "small_title": f"Per head: attention received, layer {layer} (stage {chosen.stage})",
        "title": f"Attention received per position, layer {layer} of {len(layers)} (stage {chosen.stage} "
        f"{kind}, {side}×{side}), {who}",
        "details": {
            "layer": layer,
            "layers": len(layers),
            "stage": chosen.stage,
            "subsample": chosen.subsample,
            "head": "mean" if head is None else head,
            "heads": heads,
            "note": "LeViT has no class token: each position's map value is the attention it receives, "
            "averaged over all queries of the layer (so the map sums to 1).",
        },
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
        maps = _beit_maps(attn, parse_layer(layer, attn.shape[0]), parse_head(head, attn.shape[1]), method)
    elif spec.family == "Perceiver":
        encoder, decoder = perceiver_attentions(loaded, pixel_values)
        chosen = parse_latents(latents, encoder.shape[1])
        maps = _perceiver_maps(encoder, decoder, parse_head(head, encoder.shape[0]), method, chosen)
    else:
        layers = levit_attentions(loaded, pixel_values)
        chosen_layer = parse_layer(layer, len(layers))
        maps = _levit_maps(layers, chosen_layer, parse_head(head, layers[chosen_layer - 1].weights.shape[0]))
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
