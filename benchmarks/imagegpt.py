"""ImageGPT sampling: the fast sampler against `model.generate`, full-size architectures with random
weights (speed does not depend on weight values)."""

from __future__ import annotations

import functools

import torch

from benchmarks.common import Row, device_label, measure
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
    modes = ["cuda-graph", "dynamic"] if device.type == "cuda" else ["dynamic"]
    warmup = 0 if device.type == "cpu" else 1  # a CPU run of 1024 tokens is long enough to need no warm-up
    rows = []
    for size in sizes:
        model = build(size, device, dtype)
        for batch in batches:
            reference = functools.partial(generate, model, batch, tokens, device)
            reference_s, reference_peak = measure(reference, repeat, device, warmup)
            for mode in modes:
                sampler = FastSampler(model, mode)
                ours = functools.partial(sample, sampler, batch, tokens, device)
                ours_s, ours_peak = measure(ours, repeat, device, warmup)
                if mode == "cuda-graph" and sampler.graph_error:
                    mode = f"cuda-graph failed, ran dynamic: {sampler.graph_error}"
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
