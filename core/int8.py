"""Fast int8 linear layers for CPUs: PyTorch's dynamically quantized linear layer (fbgemm kernels;
the activations are quantized to 8 bits per call, the weights once, per output channel, symmetric, to
8 bits where the CPU has VNNI and 7 bits where it does not: see `weight_levels`).

Why this kernel: on the 2-core machine the benchmarks ran on (AMD EPYC, AVX-512 with VNNI and BF16),
measured in one run with the layer shapes of Llama-7B (4096x4096 and 11008x4096 matrices;
milliseconds for one decoder layer's linear layers, minimum of 4 runs): float32 35 (one token) / 1102
(600 tokens); bfloat16 42 / 456; torch's int8 weight-only kernel (what torchao's int8 weight-only
layers call) 10x slower than float32 for one token; torchao's int8 dynamic 420 / 501; fbgemm's
dynamic int8 13 / 248, the fastest at both sizes.

`quantize_linears(module)` swaps every `nn.Linear` and GPT-2 style `Conv1D` below `module`, except
under the names in `keep`, for the int8 layer, one layer at a time (each float weight is freed as soon as
its int8 copy exists). Quantized tensors are marked deprecated for a future PyTorch; torch is pinned
(requirements.txt).
"""

from __future__ import annotations

import functools
import platform
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.lazy import torch


def _int8_linear_class() -> type:
    """PyTorch's dynamic int8 linear layer with 8-bit activations. Its own forward quantizes activations
    to 7 bits (`reduce_range`), which keeps the 16-bit sums of two products of CPUs without VNNI from
    saturating; on a smaller ViP-LLaVA that cost 75% top-1 agreement with float32 against 98% with 8
    bits. Here activations keep 8 bits everywhere and, on those CPUs, the weights give up the bit instead
    (`weight_levels`)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class Int8Linear(DynamicLinear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)

        def _get_name(self) -> str:
            return "Int8Linear"

    return Int8Linear


_INT8_LINEAR: list[type] = []


def _dynamic_linear(values: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """An int8 dynamic linear layer computing x @ (values * scales).T + bias, from `values` (out, in) int8
    and `scales` (out,), one per output channel."""
    if not _INT8_LINEAR:
        _INT8_LINEAR.append(_int8_linear_class())
    out_features, in_features = values.shape
    with warnings.catch_warnings():  # quantized tensors are deprecated for a future torch (pinned here)
        warnings.simplefilter("ignore")
        layer = _INT8_LINEAR[0](in_features, out_features, bias_=bias is not None, dtype=torch.qint8)
        weight = torch._make_per_channel_quantized_tensor(
            values.to(torch.int8), scales.reshape(-1).double(), torch.zeros(out_features, dtype=torch.long), 0
        )
        layer.set_weight_bias(weight, None if bias is None else bias.detach().float())
    return layer


@functools.cache
def weight_levels() -> int:
    """The largest int8 weight value on this CPU: 127 where fbgemm adds products in 32 bits (x86 with
    AVX-512 VNNI) and where fbgemm does not run (not x86); 63 on other x86 CPUs, whose AVX2 kernels add
    two u8 x s8 products in a 16-bit lane, which 255 x 127 x 2 overflows and 255 x 63 x 2 does not.

    Measured on an AMD EPYC with AVX2 only, on the tiny ImageGPT (teacher-forced next colour against
    float32, the test in tests/test_imagegpt.py): 127 levels 73% (saturated sums), 7-bit activations
    (PyTorch's `reduce_range`) 93%, 63 weight levels with 8-bit activations 95%."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return 127
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:  # not Linux: assume no VNNI (exact either way, one bit coarser)
        return 63
    return 127 if "avx512_vnni" in flags else 63


def _int8_values(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, scales) of a float weight (out, in): symmetric, one scale per output channel, the largest
    |w| of the channel / `weight_levels()`."""
    levels = weight_levels()
    weight = weight.detach().float()
    scales = (weight.abs().amax(dim=1) / levels).clamp(min=torch.finfo(torch.float32).tiny)
    return torch.round(weight / scales[:, None]).clamp(-levels, levels), scales


def quantize_linears(module: Any, keep: Iterable[str] = ()) -> int:
    """Swap the linear layers below `module` for int8 dynamic ones, in place, layer by layer (each float
    copy is freed before the next); modules whose qualified name starts with one in `keep` stay as they
    are. Returns how many layers were swapped."""
    from transformers.pytorch_utils import Conv1D

    kept = tuple(keep)
    swapped = 0
    # names only: holding the modules themselves would keep every float layer alive until the end
    names = [name for name, child in module.named_modules() if isinstance(child, (torch.nn.Linear, Conv1D))]
    for name in names:
        if not name or name.startswith(kept):
            continue
        child = module.get_submodule(name)
        if isinstance(child, torch.nn.Linear):
            new = _dynamic_linear(*_int8_values(child.weight), child.bias)
        elif isinstance(child, Conv1D):  # weight (in, out): y = x @ weight + bias
            new = _dynamic_linear(*_int8_values(child.weight.t()), child.bias)
        else:
            continue
        parent_name, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, attribute, new)
        del child
        swapped += 1
    return swapped


def is_int8(module: Any) -> bool:
    """Whether `module` holds layers swapped by `quantize_linears`."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(child, DynamicLinear) for child in module.modules())


def int8_bytes(module: Any) -> int:
    """Bytes of the packed int8 weights (with their scales and biases) of the swapped layers below `module`;
    they are not among its parameters."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    total = 0
    for child in module.modules():
        if isinstance(child, DynamicLinear):
            weight, bias = child._weight_bias()
            scales, zero_points = weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
            total += weight.numel() + scales.numel() * (scales.element_size() + zero_points.element_size())
            total += 0 if bias is None else bias.numel() * bias.element_size()
    return total
