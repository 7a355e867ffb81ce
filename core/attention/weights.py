"""Attention weights of each family, read from the loaded model: BEiT and Perceiver IO with
`output_attentions` on transformers' eager path (switched on for one call, under a lock per model),
LeViT through forward hooks that recompute the weights with each attention module's own layers.

Weights are float32 numpy arrays; each row (one query) sums to 1.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.lazy import torch
from core.models import LoadedModel

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
