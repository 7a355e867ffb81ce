"""Perceiver IO optical flow on one 368x496 tile and on a 1024x436 frame pair (Sintel's size, six
tiles): our path (core.perceiver_attention, attention through scaled_dot_product_attention; for the
pair, core.flow's tiling with its tile batch, core.flow.tile_batch) against the stock transformers
forward on the same tiles, one at a time, blended the same way, on a full-size
PerceiverForOpticalFlow (deepmind/optical-flow-perceiver's architecture) with random weights.

Each variant runs in a fresh subprocess so that its peak memory is its own (benchmarks.common's
PeakMemory: on CPU the resident set sampled every millisecond, which catches the stock model's
182,528 x 2,048 attention matrices; on CUDA torch's peak allocation). The subprocesses also save
their output so the parent can check the two agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import Row, device_label, measure
from core import flow as core_flow
from core.flow import FLOW_SCALE, image_patches, normalise, perceiver_flow, tiled_flow
from core.models import LoadedModel
from core.registry import get_spec

TILE = (368, 496)
PAIR = (436, 1024)
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


def pair_frames() -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 frames of PAIR's size: a photo and the same photo shifted by a few pixels."""
    photo = Image.open(ROOT / "assets" / "grace_hopper.jpg").convert("RGB").resize(PAIR[::-1])
    first = np.asarray(photo)
    return first, np.roll(first, (2, -3), axis=(0, 1))


def stock_tile_forward(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    """The stock model on one tile at a time (core.flow's input preparation and output scaling)."""

    def forward(tiles: np.ndarray) -> np.ndarray:
        out = []
        for tile in tiles:
            frames = torch.from_numpy(tile[None]).to(device).permute(0, 1, 4, 2, 3)
            with torch.inference_mode():
                out.append(model(inputs=image_patches(frames).to(dtype)).logits.float().cpu().numpy())
        return np.concatenate(out) * FLOW_SCALE

    return forward


def worker(variant: str, device: torch.device, dtype: torch.dtype, repeat: int, out: Path) -> dict:
    """One variant in this process: median time and peak memory (MB) of a tile forward ("ours",
    "stock") or of the flow of a frame pair ("pair-ours", "pair-stock")."""
    from core.perceiver_attention import use_sdpa_attention

    model = build(device, dtype)
    result: list[torch.Tensor] = []
    if variant.startswith("pair"):
        first, second = pair_frames()
        if variant == "pair-ours":
            loaded = LoadedModel(get_spec("perceiver-flow"), model, None, device, dtype, 0, 0.0)
            flow_of_pair = lambda: perceiver_flow(first, second, loaded)[0]  # noqa: E731
        else:
            stock = stock_tile_forward(model, device, dtype)
            flow_of_pair = lambda: tiled_flow(normalise(first), normalise(second), stock)[0]  # noqa: E731

        def forward() -> None:
            result[:] = [torch.from_numpy(flow_of_pair())]

        warmup = 0 if device.type == "cpu" else 1  # a CPU pair takes minutes: no warm-up needed
    else:
        if variant == "ours":
            use_sdpa_attention(model)
        generator = torch.Generator().manual_seed(1)
        inputs = torch.randn(1, 2, 27, *TILE, generator=generator).to(device, dtype)

        def forward() -> None:
            with torch.inference_mode():
                result[:] = [model(inputs=inputs).logits]

        warmup = 1

    seconds, peak = measure(forward, repeat, device, warmup=warmup)
    torch.save(result[0].float().cpu(), out)
    return {"seconds": seconds, "peak_mb": peak}


def spawn(variant: str, device: torch.device, dtype: torch.dtype, repeat: int, out: Path) -> dict:
    module = "benchmarks.perceiver_flow"
    command = [sys.executable, "-m", module, variant, device.type, str(dtype), str(repeat), str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"perceiver-flow {variant} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(
    variants: tuple[str, str],
    device: torch.device,
    dtype: torch.dtype,
    repeat: int,
    task: str,
    batch: str,
    reference: str,
) -> Row:
    """Run our variant and the stock one, each in its own process: their times, peaks and how they differ."""
    with tempfile.TemporaryDirectory() as folder:
        ours_out, stock_out = Path(folder) / "ours.pt", Path(folder) / "stock.pt"
        ours = spawn(variants[0], device, dtype, repeat, ours_out)
        stock = spawn(variants[1], device, dtype, repeat, stock_out)
        ours_result, stock_result = torch.load(ours_out), torch.load(stock_out)
    diff = (ours_result - stock_result).abs().max().item()
    scale = stock_result.abs().max().item()
    what = "logit" if variants[0] == "ours" else "flow, px"
    return Row(
        task=task,
        model="optical-flow-perceiver size (random weights)",
        device=device_label(device, dtype),
        batch=batch,
        ours_s=ours["seconds"],
        reference_s=stock["seconds"],
        reference=reference,
        ours_peak_mb=ours["peak_mb"],
        reference_peak_mb=stock["peak_mb"],
        note=f"max abs diff {diff:.1e} (largest {what} {scale:.1e}); peak memory "
        f"{stock['peak_mb'] / max(ours['peak_mb'], 1):.1f}x lower",
        runs=repeat,
    )


def run(device: torch.device, dtype: torch.dtype, repeat: int, pair: bool = True) -> list[Row]:
    rows = [
        compare(
            ("ours", "stock"),
            device,
            dtype,
            repeat,
            "perceiver flow tile",
            "1 x 368x496",
            "PerceiverForOpticalFlow forward",
        )
    ]
    if pair:
        batch = f"1 pair {PAIR[1]}x{PAIR[0]} (6 tiles, {core_flow.tile_batch(device)} per forward)"
        reference = "stock forward on the same tiles, one at a time"
        pair_repeat = 1 if device.type == "cpu" else repeat
        rows.append(
            compare(
                ("pair-ours", "pair-stock"), device, dtype, pair_repeat, "perceiver flow, frame pair", batch, reference
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="one perceiver-flow variant (used by run())")
    parser.add_argument("variant", choices=["ours", "stock", "pair-ours", "pair-stock"])
    parser.add_argument("device")
    parser.add_argument("dtype")
    parser.add_argument("repeat", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype.removeprefix("torch."))
    print(json.dumps(worker(args.variant, torch.device(args.device), dtype, args.repeat, args.out)))


if __name__ == "__main__":
    main()
