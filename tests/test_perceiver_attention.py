"""core.perceiver_attention: the tiny Perceiver IO flow model gives the same flow with its attention
through scaled_dot_product_attention, and only the patched model object changes."""

from __future__ import annotations

import copy

import pytest
import torch

from core.flow import TILE
from core.perceiver_attention import PATCHED, use_sdpa_attention, uses_sdpa_attention
from core.tiny.flow import tiny_perceiver_flow


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    from transformers import PerceiverForOpticalFlow

    torch.manual_seed(0)
    (config,) = tiny_perceiver_flow()
    stock = PerceiverForOpticalFlow(config).eval()
    other = copy.deepcopy(stock)
    patched = copy.deepcopy(stock)
    assert use_sdpa_attention(patched) == 3  # encoder cross, one latent self-attention, decoder cross
    return stock, other, patched


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(1, 2, 27, *TILE, generator=torch.Generator().manual_seed(1))


def test_same_flow_as_the_stock_model(models: tuple, inputs: torch.Tensor) -> None:
    stock, _, patched = models
    with torch.inference_mode():
        expected = stock(inputs=inputs).logits
        got = patched(inputs=inputs).logits
    assert got.shape == expected.shape == (1, *TILE, 2)
    difference = (got - expected).abs().max().item()
    assert difference < 1e-4
    assert difference <= 1e-4 * expected.abs().max().item()  # also relative: random-weight logits are small


def test_attention_probabilities_still_come_from_the_original_path(models: tuple, inputs: torch.Tensor) -> None:
    stock, _, patched = models
    with torch.inference_mode():
        expected = stock(inputs=inputs, output_attentions=True)
        got = patched(inputs=inputs, output_attentions=True)
    assert len(got.cross_attentions) == len(expected.cross_attentions) > 0
    for a, b in zip(got.cross_attentions, expected.cross_attentions, strict=True):
        torch.testing.assert_close(a, b)


def test_only_the_patched_instance_changes(models: tuple) -> None:
    from transformers.models.perceiver.modeling_perceiver import PerceiverSelfAttention

    stock, other, patched = models
    assert uses_sdpa_attention(patched)
    assert not uses_sdpa_attention(stock) and not uses_sdpa_attention(other)
    assert "forward" not in vars(PerceiverSelfAttention) or PerceiverSelfAttention.forward.__module__.startswith(
        "transformers"
    )
    for module in other.modules():
        if isinstance(module, PerceiverSelfAttention):
            assert "forward" not in vars(module) and not hasattr(module, PATCHED)
    assert use_sdpa_attention(patched) == 0  # idempotent
