"""ViP-LLaVA-7B on the CPU, in each form the app can load it in (core/chat_memory.py).

A full-size random checkpoint (CLIP ViT-L/14-336 + Llama-7B, the real config's sizes, float16 on disk
like llava-hf/vip-llava-7b-hf) is written shard by shard without ever holding the model in memory,
then loaded through the app's own loader (`core.models.load_model`) in each form that fits this
machine: peak memory of the load, time to the first token of an answer (the 576 image tokens and the
prompt read in one step) and tokens per second after it (greedy, one sequence).

Faithfulness is measured on a smaller model of the same architecture (same classes, fewer and narrower
layers, random weights): each form's next token at every step of a teacher-forced answer against
float32's, as the share of steps where the top-1 token agrees.

Not part of `python -m benchmarks` by default: it writes 14 GB and takes many minutes on 2 cores
(`python -m benchmarks --only chat-cpu`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks.common import PeakMemory

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PROMPT_QUESTION = "What is within the red rectangle?"
SHARD_BYTES = 2 * 2**30


def full_size_config(processor: Any, small: bool = False) -> Any:
    """The config of llava-hf/vip-llava-7b-hf (docs/checkpoints.md), or a smaller one of the same
    architecture; special token ids from the tiny processor's tokenizer."""
    from core.tiny.chat import vip_llava_config

    vision = {
        "image_size": 336,
        "patch_size": 14,
        "hidden_size": 256 if small else 1024,
        "intermediate_size": 1024 if small else 4096,
        "num_hidden_layers": 12 if small else 24,
        "num_attention_heads": 4 if small else 16,
        "projection_dim": 768,
    }
    text = {
        "vocab_size": 32064,
        "hidden_size": 1024 if small else 4096,
        "intermediate_size": 2816 if small else 11008,
        "num_hidden_layers": 4 if small else 32,
        "num_attention_heads": 8 if small else 32,
        "num_key_value_heads": 8 if small else 32,
        "rms_norm_eps": 1e-5,
    }
    layers = [-2, -5, -8, -11, 6]
    return vip_llava_config(
        processor.tokenizer, vision, text, vision_feature_layer=layers, projector_layernorm_eps=1e-5
    )


def save_random_checkpoint(folder: Path, small: bool = False) -> Path:
    """Write a random checkpoint (float16 safetensors shards + index, the processor) into `folder`, one
    shard in memory at a time: the model is built on the meta device only for its names and shapes."""
    from safetensors.torch import save_file
    from transformers import VipLlavaForConditionalGeneration

    from core.tiny.chat import tiny_processor

    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    processor = tiny_processor()
    config = full_size_config(processor, small)
    with torch.device("meta"):
        model = VipLlavaForConditionalGeneration(config)
    generator = torch.Generator().manual_seed(0)
    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    shard_bytes, index = 0, 0

    def flush() -> None:
        nonlocal shard, shard_bytes, index
        name = f"model-{index:05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
        shard, shard_bytes, index = {}, 0, index + 1

    for name, parameter in model.state_dict().items():
        if name.endswith("norm.weight") or "layernorm" in name or "layer_norm" in name:
            value = torch.ones(parameter.shape) if name.endswith("weight") else torch.zeros(parameter.shape)
        else:
            value = torch.randn(parameter.shape, generator=generator) * 0.02
        shard[name] = value.to(torch.float16)
        shard_bytes += shard[name].nbytes
        if shard_bytes >= SHARD_BYTES:
            flush()
    if shard:
        flush()
    total = sum((folder / n).stat().st_size for n in set(weight_map.values()))
    index_file = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index_file), encoding="utf-8")
    config.dtype = "float16"
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _load(folder: Path, form: str) -> Any:
    """The app's loader, on `folder`, in `form` (PLAYGROUND_CHAT_CPU_FORM)."""
    from core import chat_memory
    from core.models import load_model
    from core.registry import get_spec
    from core.settings import get_settings, reset_settings

    os.environ["PLAYGROUND_CHAT_CPU_FORM"] = form
    os.environ["PLAYGROUND_TINY"] = "0"
    os.environ["PLAYGROUND_DEVICE"] = "cpu"
    reset_settings()
    spec = dataclasses.replace(get_spec(chat_memory.DEFAULT_MODEL, "chat"), hub_id=str(folder))
    chat_memory.check_memory(spec, get_settings(), available=2**50)
    return load_model(spec, get_settings())


def _inputs(loaded: Any) -> dict[str, torch.Tensor]:
    from core.chat import build_prompt

    photo = Image.open(ASSETS / "chelsea.jpg").convert("RGB")
    return loaded.processor(images=photo, text=build_prompt(PROMPT_QUESTION), return_tensors="pt")


class _StepClock:
    """A logits processor that notes the time of every generation step (it runs after each forward)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


def speed(folder: Path, form: str, new_tokens: int) -> dict[str, Any]:
    """Load in `form` and answer once: load time and peak memory, first-token time, tokens per second."""
    from transformers import LogitsProcessorList

    gc.collect()
    with PeakMemory(torch.device("cpu")) as peak:
        loaded = _load(folder, form)
        inputs = _inputs(loaded)
        clock = _StepClock()
        start = time.perf_counter()
        with torch.inference_mode():
            loaded.model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([clock]),
            )
    first = clock.times[0] - start
    per_token = (clock.times[-1] - clock.times[0]) / max(1, len(clock.times) - 1)
    row = {
        "form": form,
        "weights_gb": loaded.nbytes / 1e9,
        "load_s": loaded.load_seconds,
        "peak_gb": peak.mb * 2**20 / 1e9,
        "anon_gb": peak.anon_mb * 2**20 / 1e9,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "first_token_s": first,
        "tokens_per_s": 1 / per_token,
        "new_tokens": len(clock.times),
    }
    del loaded
    gc.collect()
    return row


def agreement(folder: Path, forms: list[str], steps: int) -> dict[str, float]:
    """Top-1 agreement of each form's next token with float32's at every step of a teacher-forced
    answer: `steps` tokens of English from the shipped corpus follow the prompt, and at each of them
    every form predicts the next token from the same context."""
    reference = _load(folder, "float32")
    inputs = _inputs(reference)
    corpus = (ASSETS / "tiny-corpus.txt").read_text(encoding="utf-8")
    answer = reference.processor.tokenizer(corpus, add_special_tokens=False, return_tensors="pt").input_ids
    prompt = inputs["input_ids"].shape[1]
    ids = torch.cat([inputs["input_ids"], answer[:, :steps]], dim=1)
    forced = {**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.inference_mode():
        exact = reference.model(**forced).logits[0, prompt - 1 : -1].float()
    expected = exact.argmax(-1)
    del reference
    shares = {}
    for form in forms:
        loaded = _load(folder, form)
        with torch.inference_mode():
            logits = loaded.model(**forced).logits[0, prompt - 1 : -1].float()
        shares[form] = float((logits.argmax(-1) == expected).float().mean())
        error = float((logits - exact).norm() / exact.norm())
        distinct = len(set(expected.tolist()))
        print(
            f"{form}: top-1 agreement {shares[form]:.3f} ({distinct} distinct tokens from float32), "
            f"relative error of the logits {error:.4f}",
            flush=True,
        )
        del loaded
        gc.collect()
    return shares


def run(folder: Path, forms: list[str], new_tokens: int = 16, steps: int = 64) -> list[dict[str, Any]]:
    import psutil

    full = save_random_checkpoint(folder / "vip-llava-7b-random")
    small = save_random_checkpoint(folder / "vip-llava-small-random", small=True)
    shares = agreement(small, [f for f in forms if f != "float32"], steps)
    rows = []
    for form in forms:
        needed = {"float32": 29e9, "bfloat16": 15e9, "int8": 9e9}[form]
        if psutil.virtual_memory().available < needed:
            rows.append({"form": form, "skipped": f"needs about {needed / 1e9:.0f} GB"})
            continue
        row = speed(full, form, new_tokens)
        row["agreement"] = shares.get(form, 1.0)
        rows.append(row)
        print(row, flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], steps: int) -> str:
    lines = [
        "| form | weights in memory | peak memory (load + answer): not file-backed / resident | load | prompt tokens "
        "| first token | "
        f"then | top-1 agreement with float32 ({steps} teacher-forced steps of English, smaller model) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['form']} | not run here: {row['skipped']} | | | | | | |")
            continue
        lines.append(
            f"| {row['form']} | {row['weights_gb']:.1f} GB | {row['anon_gb']:.1f} / {row['peak_gb']:.1f} GB "
            f"| {row['load_s']:.0f} s | "
            f"{row['prompt_tokens']} | {row['first_token_s']:.0f} s | {row['tokens_per_s']:.2f} tokens/s | "
            f"{row['agreement'] * 100:.0f}% |"
        )
    return "\n".join(lines) + "\n"
