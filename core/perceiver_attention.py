"""Memory-efficient attention for one Perceiver IO model object.

transformers' PerceiverSelfAttention computes softmax(Q·Kᵀ/√d)·V with plain matmuls, so it holds
the whole attention matrix (and its softmax) in memory. For the optical-flow model on one
368x496 tile that is 182,528 pixels × 2,048 latents, twice (encoder and decoder cross-attention):
about 1.5 GB per matrix in float32. `use_sdpa_attention` swaps the `forward` of every
PerceiverSelfAttention inside one model for one that computes the same Q, K and V with the module's
own layers and hands them to torch's scaled_dot_product_attention, whose fused kernels (flash /
memory-efficient on CUDA, flash on CPU) never build the full matrix.

Only that model object changes (the new forward is an instance attribute); the class and every
other instance keep transformers' code. When attention probabilities are asked for
(output_attentions=True), or a mask is not a float or bool tensor, the original forward runs.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

from core.lazy import F, torch

PATCHED = "_sdpa_original_forward"
"""Attribute holding the original bound forward on a patched module (also marks it as patched)."""


def _sdpa_forward(
    self: nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
    inputs_mask: torch.Tensor | None = None,
    output_attentions: bool | None = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, ...]:
    """PerceiverSelfAttention.forward through F.scaled_dot_product_attention (same maths: layer
    norms, Q/K/V projections, scores / √(qk channels per head), additive mask, softmax, dropout)."""
    is_cross_attention = inputs is not None
    mask = inputs_mask if is_cross_attention else attention_mask
    if output_attentions or kwargs or (mask is not None and not (mask.is_floating_point() or mask.dtype == torch.bool)):
        return getattr(self, PATCHED)(
            hidden_states,
            attention_mask=attention_mask,
            inputs=inputs,
            inputs_mask=inputs_mask,
            output_attentions=output_attentions,
            **kwargs,
        )
    hidden_states = self.layernorm1(hidden_states)
    inputs = self.layernorm2(inputs)
    source = inputs if is_cross_attention else hidden_states
    queries = self.transpose_for_scores(self.query(hidden_states), self.qk_channels_per_head)
    keys = self.transpose_for_scores(self.key(source), self.qk_channels_per_head)
    values = self.transpose_for_scores(self.value(source), self.v_channels_per_head)
    if mask is not None and mask.is_floating_point():
        mask = mask.to(queries.dtype)
    context = F.scaled_dot_product_attention(
        queries,
        keys,
        values,
        attn_mask=mask,
        dropout_p=self.dropout.p if self.training else 0.0,
    )  # default scale 1/√(qk channels per head), as in transformers
    batch, heads, length, head_dim = context.shape
    return (context.transpose(1, 2).reshape(batch, length, heads * head_dim),)


def use_sdpa_attention(model: nn.Module) -> int:
    """Make every PerceiverSelfAttention inside `model` (this object only) use
    scaled_dot_product_attention. Idempotent; returns how many modules were patched this call."""
    from transformers.models.perceiver.modeling_perceiver import PerceiverSelfAttention

    patched = 0
    for module in model.modules():
        if isinstance(module, PerceiverSelfAttention) and not hasattr(module, PATCHED):
            setattr(module, PATCHED, module.forward)
            module.forward = types.MethodType(_sdpa_forward, module)
            patched += 1
    return patched


def uses_sdpa_attention(model: nn.Module) -> bool:
    """Whether `model` has had `use_sdpa_attention` applied (any Perceiver attention patched)."""
    return any(hasattr(module, PATCHED) for module in model.modules())
