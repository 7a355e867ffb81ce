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

  weights.py   attention weights of each family (eager attention for one call, LeViT's hooks)
  maps.py      rollout and the maps of each family
  requests.py  the entry point `attention` and its result
"""

from core.attention.maps import JSON_MAX_SIDE, MAX_SMALL_MAPS, ROLLOUT_RESIDUAL, pooled, rollout, side_of
from core.attention.requests import (
    DEFAULT_OPACITY,
    MAX_LAYER,
    METHODS,
    METHODS_BY_FAMILY,
    TASK,
    VIEW_SIDE,
    AttentionResult,
    attention,
    attention_models,
    parse_head,
    parse_latents,
    parse_layer,
)
from core.attention.weights import (
    LevitLayer,
    beit_attentions,
    eager_attention,
    levit_attentions,
    levit_weights,
    model_lock,
    perceiver_attentions,
)

__all__ = [
    "DEFAULT_OPACITY",
    "JSON_MAX_SIDE",
    "MAX_LAYER",
    "MAX_SMALL_MAPS",
    "METHODS",
    "METHODS_BY_FAMILY",
    "ROLLOUT_RESIDUAL",
    "TASK",
    "VIEW_SIDE",
    "AttentionResult",
    "LevitLayer",
    "attention",
    "attention_models",
    "beit_attentions",
    "eager_attention",
    "levit_attentions",
    "levit_weights",
    "model_lock",
    "parse_head",
    "parse_latents",
    "parse_layer",
    "perceiver_attentions",
    "pooled",
    "rollout",
    "side_of",
]
