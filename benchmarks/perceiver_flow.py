"""Perceiver IO optical flow on one 368x496 tile: our path (core.perceiver_attention, attention
through scaled_dot_product_attention) against the stock transformers forward, on a full-size
PerceiverForOpticalFlow (deepmind/optical-flow-perceiver's architecture) with random weights.

Each variant runs in a fresh subprocess so that its peak memory is its own: on CPU the growth of
the process's peak resident set (ru_maxrss) over the forward calls, which catches the
182,528 x 2,048 attention matrices that sampling RSS between calls would miss; on CUDA torch's peak
allocation. The subprocesses also save their output so the parent can check the two agree.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import Row, measure

TILE = (368, 496)
FULL_SIZE = {
    # the architecture of deepmind/optical-flow-perceiver (its config.json / the conversion script)
    "num_latents": 2048,
    "d_latents": 512,
    "d_model": 322,
    "num_blocks": 1,
    "num_self_attends_per_block": 24,
    "num_self_attention_heads": 16,
    "num_cross_attention_heads": 1,
    "train_size": list(TILE),
}
ROOT = Path(__file__).resolve().parent.parent


def build(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import PerceiverConfig, PerceiverForOpticalFlow

    torch.manual_seed(0)
    return PerceiverForOpticalFlow(PerceiverConfig(**FULL_SIZE)).to(device, dtype).eval()


def worker(variant: str, device: torch.device, dtype: torch.dtype, repeat: int, out: Path) -> dict:
    """One variant in this process: median time and peak memory (MB) of the tile forward."""
    from core.perceiver_attention import use_sdpa_attention

    model = build(device, dtype)
    if variant == "ours":
        use_sdpa_attention(model)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(1, 2, 27, *TILE, generator=generator).to(device, dtype)
    result: list[torch.Tensor] = []

    def forward() -> None:
        with torch.inference_mode():
            result[:] = [model(inputs=inputs).logits]

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, cuda_peak = measure(forward, repeat, device, warmup=1)
    cpu_peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # ru_maxrss: KiB on Linux
    peak = cuda_peak if device.type == "cuda" else cpu_peak
    torch.save(result[0].float().cpu(), out)
    return {"seconds": seconds, "peak_mb": peak}


def spawn(variant: str, device: torch.device, dtype: torch.dtype, repeat: int, out: Path) -> dict:
    module = "benchmarks.perceiver_flow"
    command = [sys.executable, "-m", module, variant, device.type, str(dtype), str(repeat), str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"perceiver-flow {variant} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(device: torch.device, dtype: torch.dtype, repeat: int) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        ours_out, stock_out = Path(folder) / "ours.pt", Path(folder) / "stock.pt"
        ours = spawn("ours", device, dtype, repeat, ours_out)
        stock = spawn("stock", device, dtype, repeat, stock_out)
        ours_logits, stock_logits = torch.load(ours_out), torch.load(stock_out)
    diff = (ours_logits - stock_logits).abs().max().item()
    scale = stock_logits.abs().max().item()
    return [
        Row(
            task="perceiver flow tile",
            model="optical-flow-perceiver size (random weights)",
            device=f"{device.type} {str(dtype).removeprefix('torch.')}",
            batch="1 x 368x496",
            ours_s=ours["seconds"],
            reference_s=stock["seconds"],
            reference="PerceiverForOpticalFlow forward",
            ours_peak_mb=ours["peak_mb"],
            reference_peak_mb=stock["peak_mb"],
            note=f"max abs diff {diff:.1e} (largest logit {scale:.1e}); peak memory "
            f"{stock['peak_mb'] / max(ours['peak_mb'], 1):.1f}x lower",
            runs=repeat,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="one perceiver-flow variant (used by run())")
    parser.add_argument("variant", choices=["ours", "stock"])
    parser.add_argument("device")
    parser.add_argument("dtype")
    parser.add_argument("repeat", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype.removeprefix("torch."))
    print(json.dumps(worker(args.variant, torch.device(args.device), dtype, args.repeat, args.out)))


if __name__ == "__main__":
    main()
