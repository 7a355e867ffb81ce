"""The int8 layers of core/int8.py: what they swap, what they keep, and how close they stay to float32."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from transformers.pytorch_utils import Conv1D

from core import int8
from core.int8 import int8_bytes, is_int8, quantize_linears, weight_levels


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("body", torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.GELU(), Conv1D(32, 96)))
    model.add_module("head", torch.nn.Linear(32, 10))
    return model.eval()


def test_linear_and_conv1d_layers_become_int8_and_kept_ones_stay() -> None:
    model = _model()
    x = torch.randn(3, 5, 64)
    expected = model(x)
    assert quantize_linears(model, keep=("head",)) == 2
    assert isinstance(model.body[0], DynamicLinear) and isinstance(model.body[2], DynamicLinear)
    assert isinstance(model.head, torch.nn.Linear) and is_int8(model)
    got = model(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 0.02 * expected.abs().max()
    assert int8_bytes(model) >= 64 * 96 + 96 * 32  # one byte per weight, plus scales and biases
    assert not is_int8(_model()) and int8_bytes(_model()) == 0


def test_weights_are_quantized_per_output_channel_symmetrically() -> None:
    model = _model()
    weight = model.body[0].weight.detach().clone()
    bias = model.body[0].bias.detach().clone()
    quantize_linears(model.body)
    packed, packed_bias = model.body[0]._weight_bias()
    scales = weight.abs().amax(dim=1) / weight_levels()
    assert torch.allclose(packed.q_per_channel_scales().float(), scales)
    assert torch.equal(packed.int_repr(), torch.round(weight / scales[:, None]).to(torch.int8))
    assert torch.equal(packed_bias, bias)
    conv = _model().body[2]  # Conv1D keeps its weight as (in, out)
    conv_scales = conv.weight.detach().abs().amax(dim=0) / weight_levels()
    expected = torch.round(conv.weight.detach().t() / conv_scales[:, None]).to(torch.int8)
    assert torch.equal(model.body[2]._weight_bias()[0].int_repr(), expected)


def test_activations_use_eight_bits() -> None:
    """Inputs that differ by less than a 7-bit step still give different outputs."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0]]))
    quantize_linears(model)
    x = torch.tensor([[1.0, -1.0], [1.0 - 2 / 255 * 1.5, -1.0]])
    y = model(x)
    assert y[0, 0] != y[1, 0]


def test_weights_give_up_a_bit_where_the_cpu_would_saturate(monkeypatch: pytest.MonkeyPatch) -> None:
    """x86 without AVX-512 VNNI adds two u8 x s8 products in 16 bits: weights up to 63 keep every such sum
    exact, so 63 levels are right on any CPU (one bit coarser), and are what such a CPU gets."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if platform.machine() == "x86_64" and flags:
        assert weight_levels() == (127 if "avx512_vnni" in flags else 63)
    weight_levels.cache_clear()
    monkeypatch.setattr(int8, "weight_levels", lambda: 63)
    model = _model()
    x = torch.randn(3, 5, 64)
    expected = model(x)
    quantize_linears(model)
    assert model.body[0]._weight_bias()[0].int_repr().abs().max() == 63
    assert (model(x) - expected).abs().max() < 0.02 * expected.abs().max()
