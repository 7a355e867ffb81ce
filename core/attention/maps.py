"""Maps from attention weights: rollout, the map of each family with its per-head or per-latent small
maps, and a pooled copy for JSON. A map is (side, side) float, the share of attention of each position
(its values sum to 1, or to 1 minus the class token's own share for BEiT)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.attention.weights import LevitLayer

ROLLOUT_RESIDUAL = 0.5
"""Weight of the identity (the residual connection) in rollout, as in Abnar & Zuidema."""
MAX_SMALL_MAPS = 16
JSON_MAX_SIDE = 56
"""Maps larger than this per side (a Perceiver's 224 x 224 pixels) go into the JSON sum-pooled."""


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


def beit_maps(attn: np.ndarray, layer: int, head: int | None, method: str) -> dict[str, Any]:
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


def perceiver_maps(
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


def levit_maps(layers: list[LevitLayer], layer: int, head: int | None) -> dict[str, Any]:
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
