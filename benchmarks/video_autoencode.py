"""Perceiver IO multimodal autoencoding of one whole clip window (16 frames of 224x224 and 30720 samples,
the example clip at 1 s) on a full-size PerceiverForMultimodalAutoencoding (deepmind/multimodal-perceiver's
architecture) with random weights: the app's path (core.video_model: the encoder once, every chunk of
output points decoded from its latents, chunk size from PLAYGROUND_VIDEO_DECODE_MB, the image points
through core.video_decoder's factored decoder, attention through scaled_dot_product_attention) against
transformers' documented loop (the whole model once per chunk, 128 chunks, stock attention).

The documented loop is timed over its first PASSES passes and scaled to 128 (every pass does the same
work: the whole encoder and 1/128 of the output points); the row says so. Each variant runs in a fresh
subprocess so that its peak memory is its own (benchmarks.common.PeakMemory); the parent checks that the
outputs of the passes both computed agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import PeakMemory, Row, device_label
from core import video_model as vm

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "video_tones.mp4"
START = 1.0
PASSES = 8
FULL_SIZE = {
    # deepmind/multimodal-perceiver: the multimodal_autoencoding branch of the conversion script
    # (docs/checkpoints.md); the geometry fields keep PerceiverConfig's defaults, as the script does
    "num_latents": 784,
    "d_latents": 512,
    "d_model": 704,
    "num_blocks": 1,
    "num_self_attends_per_block": 8,
    "num_self_attention_heads": 8,
    "num_cross_attention_heads": 1,
    "num_labels": 700,
}


def build(device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import PerceiverConfig, PerceiverForMultimodalAutoencoding

    torch.manual_seed(0)
    return PerceiverForMultimodalAutoencoding(PerceiverConfig(**FULL_SIZE)).to(device, dtype).eval()


def clip_inputs(device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    from core.video_autoencode import prepare_window

    window = prepare_window(EXAMPLE, START)
    return vm.model_inputs(window.frames, window.audio, device, dtype)


def worker(variant: str, device: torch.device, dtype: torch.dtype, out: Path) -> dict:
    """One variant in this process: wall time, peak memory (MB) and outputs, saved to `out`."""
    from core.perceiver_attention import use_sdpa_attention
    from core.settings import get_settings

    model = build(device, dtype)
    inputs = clip_inputs(device, dtype)
    chunks = PASSES
    with PeakMemory(device) as peak:
        start = time.perf_counter()
        if variant == "ours":
            use_sdpa_attention(model)
            chunks = vm.chunk_count(model, vm.memory_budget(device, get_settings().video_decode_mb))
            result = vm.autoencode(model, inputs, chunks)
        else:
            result = vm.documented_loop(model, inputs, indices=range(PASSES))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    np.savez(out, frames=result.frames, audio=result.audio, logits=result.logits)
    return {
        "seconds": seconds,
        "peak_mb": peak.mb,
        "chunks": chunks,
        "encode_s": result.encode_ms / 1000,
        "decode_s": result.decode_ms / 1000,
        "factored": result.factored,
    }


def _run(variant: str, device: torch.device, dtype: torch.dtype, folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    out = folder / f"{variant}.npz"
    command = [sys.executable, "-m", "benchmarks.video_autoencode", variant, device.type, str(dtype), str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(out) as saved:
        return stats, {name: saved[name] for name in saved.files}


def run(device: torch.device, dtype: torch.dtype) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        ours, ours_out = _run("ours", device, dtype, Path(folder))
        reference, reference_out = _run("documented", device, dtype, Path(folder))
    done_image = PASSES * (16 * 224 * 224 // vm.DOCUMENTED_CHUNKS)
    done_audio = PASSES * (vm.SAMPLES // vm.DOCUMENTED_CHUNKS)
    differences = [
        np.abs(ours_out["frames"].reshape(-1, 3)[:done_image] - reference_out["frames"].reshape(-1, 3)[:done_image]),
        np.abs(ours_out["audio"][:done_audio] - reference_out["audio"][:done_audio]),
        np.abs(ours_out["logits"] - reference_out["logits"]),
    ]
    largest = max(float(np.abs(ours_out["frames"]).max()), float(np.abs(ours_out["logits"]).max()))
    difference = max(float(d.max()) for d in differences)
    per_pass = reference["seconds"] / PASSES
    note = (
        f"reference timed over {PASSES} of its 128 passes ({reference['seconds']:.1f} s) and scaled to 128; "
        f"ours: 1 encoder pass ({ours['encode_s']:.1f} s) + {ours['chunks']} decoder chunks"
        f"{' (image points factored)' if ours['factored'] else ''} "
        f"({ours['decode_s']:.1f} s: decoding the 804,736 output points is most of it); "
        f"max abs diff over the {PASSES} passes' points and the label logits {difference:.1e} "
        f"(largest output {largest:.1e}); "
        f"peak MB of the reference: its {PASSES} passes"
    )
    return [
        Row(
            task="video autoencode, one window",
            model="multimodal-perceiver size (random weights)",
            device=device_label(device, dtype),
            batch="1 clip: 16x224x224 + 30720 samples",
            ours_s=ours["seconds"],
            reference_s=per_pass * vm.DOCUMENTED_CHUNKS,
            reference="documented loop: the whole model per chunk, 128 chunks",
            ours_peak_mb=ours["peak_mb"],
            reference_peak_mb=reference["peak_mb"],
            note=note,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=["ours", "documented"])
    parser.add_argument("device")
    parser.add_argument("dtype")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype.removeprefix("torch."))
    print(json.dumps(worker(args.variant, torch.device(args.device), dtype, args.out)))


if __name__ == "__main__":
    main()
