"""ImageGPT sampling: the fast sampler against `model.generate`, full-size architectures with random
weights (speed does not depend on weight values). On CPUs also the sampler over int8 linear layers
(the tab's "int8" weights, core/int8.py), with its teacher-forced top-1 agreement with float32: over a
float32 sample of 1024 tokens, the share of positions where both predict the same next colour."""

from __future__ import annotations

import functools

import torch

from benchmarks.common import Row, device_label, measure
from core.imagegpt import int8_copy
from core.imagegpt_sampler import FastSampler, SamplingOptions

SIZES = {
    "imagegpt-small": {"n_embd": 512, "n_layer": 24, "n_head": 8},
    "imagegpt-medium": {"n_embd": 1024, "n_layer": 36, "n_head": 8},
}


def build(size: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

    torch.manual_seed(0)
    config = ImageGPTConfig(**SIZES[size])
    return ImageGPTForCausalImageModeling(config).to(device, dtype).eval()


def run(
    device: torch.device, dtype: torch.dtype, repeat: int, sizes: list[str], batches: list[int], tokens: int
) -> list[Row]:
    # On CUDA the sampler replays a recorded CUDA graph per step; the eager ("dynamic") sampler is
    # measured too, so the rows show what the graph adds. Each model is built once, and `generate`
    # timed once per batch size for the rows of every mode.
    modes = ["cuda-graph", "dynamic"] if device.type == "cuda" else ["dynamic", "int8"]
    warmup = 0 if device.type == "cpu" else 1  # a CPU run of 1024 tokens is long enough to need no warm-up
    rows = []
    for size in sizes:
        model = build(size, device, dtype)
        int8_model = int8_copy(model) if "int8" in modes else None
        for batch in batches:
            reference = functools.partial(generate, model, batch, tokens, device)
            reference_s, reference_peak = measure(reference, repeat, device, warmup)
            for mode in modes:
                sampler = FastSampler(int8_model, "dynamic") if mode == "int8" else FastSampler(model, mode)
                ours = functools.partial(sample, sampler, batch, tokens, device)
                ours_s, ours_peak = measure(ours, repeat, device, warmup)
                if mode == "cuda-graph" and sampler.graph_error:
                    mode = f"cuda-graph failed, ran dynamic: {sampler.graph_error}"
                note = ""
                if mode == "int8":
                    mode = "dynamic over int8 linear layers"
                    note = f"top-1 agreement with float32 {agreement(model, int8_model, device):.1%} (teacher-forced)"
                rows.append(
                    Row(
                        task="imagegpt sample",
                        model=f"{size} (random weights), sampler {mode}",
                        device=device_label(device, dtype),
                        batch=f"{batch} x {tokens} tokens",
                        ours_s=ours_s,
                        reference_s=reference_s,
                        reference="model.generate(do_sample, top_k=40)",
                        ours_peak_mb=ours_peak,
                        reference_peak_mb=reference_peak,
                        runs=repeat,
                        note=note,
                    )
                )
    return rows


def sample(sampler: FastSampler, batch: int, tokens: int, device: torch.device) -> None:
    stream = sampler.stream(batch, SamplingOptions(num_images=batch, top_k=40, seed=0), device=device, every=tokens)
    next(stream)
    stream.close()


def generate(model: torch.nn.Module, batch: int, tokens: int, device: torch.device) -> None:
    with torch.inference_mode():
        model.generate(
            input_ids=torch.full((batch, 1), model.config.vocab_size - 1, device=device),
            max_length=tokens + 1,
            min_length=tokens + 1,
            do_sample=True,
            top_k=40,
        )


def agreement(model: torch.nn.Module, int8_model: torch.nn.Module, device: torch.device) -> float:
    """Share of the 1024 positions of a float32 sample where the int8 model's most likely next colour
    is float32's (both read the same tokens: teacher forcing)."""
    tokens = FastSampler(model, "dynamic").sample(1, SamplingOptions(num_images=1, top_k=40, seed=1))
    ids = torch.cat([torch.full((1, 1), model.config.vocab_size - 1, device=device), tokens[:, :-1]], dim=1)
    with torch.inference_mode():
        exact = model(ids).logits[0, :, :-1].argmax(-1)
        fast = int8_model(ids).logits[0, :, :-1].argmax(-1)
    return float((exact == fast).float().mean())
