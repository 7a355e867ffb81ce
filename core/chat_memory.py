"""Whether ViP-LLaVA fits, and in which form: its size on disk, the memory each form needs, the memory
that is free, the form chosen for this machine, and a clear refusal before loading when none fits.

Forms on the CPU (PLAYGROUND_CHAT_CPU_FORM, default "auto"):
- "float32": exact; 4 bytes per parameter (about 28 GB for 7B: more than a free CPU Space has).
- "int8": the language model's linear layers with int8 weights and 8-bit activations (PyTorch's
  dynamically quantized linear layers with fbgemm's kernels; core/int8.py; 7-bit weights on x86 CPUs
  without VNNI, whose kernels would saturate). The checkpoint loads in
  bfloat16 (so float32 weights are never all in memory), the layers are swapped one by one, then the
  rest (vision tower, projector, embeddings, norms, output layer) runs in float32. About 1.3 bytes per
  parameter once loaded (9.3 GB for 7B); the load peaks near bfloat16's size (14.3 GB measured).
  Measured on 2 cores with VNNI: 25 s to the first token and 3.5 tokens/s, 98% top-1 agreement with float32.
- "bfloat16": 2 bytes per parameter; only when asked for: even on a CPU that computes in bfloat16
  natively (AVX-512 BF16) it measured 69 s to the first token and 0.21 tokens/s.
"auto" takes float32 when it fits in the free memory, else int8.
On CUDA the model runs in float16/bfloat16, or 4-bit with PLAYGROUND_CHAT_4BIT=1 (bitsandbytes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailableError
from core.int8 import is_int8, quantize_linears
from core.lazy import torch
from core.models import (
    ensure_tiny_model,
    free_memory_bytes,
    register_after_load,
    register_load_options,
    select_device,
    select_dtype,
)
from core.registry import ModelSpec, get_spec
from core.settings import Settings, get_settings

TASK = "chat"
DEFAULT_MODEL = "vip-llava-7b"
MEMORY_MARGIN = 1.2
"""Weights times this: room for activations, the key/value cache and the processor."""
INT8_LOAD_MARGIN = 1.05
"""The int8 form loads in bfloat16 first: its peak is the bfloat16 weights times this (measured: 14.3 GB
above the app for 7.06B parameters, benchmarks/RESULTS.md "chat-cpu")."""
CPU_FORMS = ("float32", "bfloat16", "int8")
FULL_PRECISION = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
"""Parts that keep float32 weights in the int8 form (the image features and the output scores)."""
VISION_PARAMS_FALLBACK = 324_000_000
"""CLIP ViT-L/336 (303M) and the projector, when the checkpoint is not on disk to count them."""
CPU_SPEED = {"int8": (25.0, 3.5), "bfloat16": (69.0, 0.21)}
"""Seconds to the first token (576 image tokens and the prompt, 623 in all) and tokens per second after
it, of ViP-LLaVA-7B on 2 CPU cores (AMD EPYC with AVX-512), per form, measured by `python -m benchmarks
--only chat-cpu` (benchmarks/RESULTS.md "chat-cpu", 2026-12-01); float32 needs more memory than it has."""


def _weight_files(spec: ModelSpec, settings: Settings) -> list[Path]:
    if settings.tiny:
        return sorted(ensure_tiny_model(spec, settings).glob("*.safetensors"))
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(spec.hub_id, allow_patterns=["*.safetensors"], local_files_only=True)
    except Exception:
        return []
    return sorted(Path(folder).glob("*.safetensors"))


def parameter_counts(spec: ModelSpec, settings: Settings | None = None) -> dict[str, int]:
    """Parameters of the weights on disk (safetensors headers; in tiny mode the tiny model is built
    first), as {"full_precision": parts kept in float32 in the int8 form, "language": the rest}; the
    registry's figure when the checkpoint is not downloaded yet."""
    from safetensors import safe_open

    files = _weight_files(spec, settings or get_settings())
    if not files:
        total = int(spec.params_millions * 1e6)
        return {"full_precision": VISION_PARAMS_FALLBACK, "language": total - VISION_PARAMS_FALLBACK}
    counts = {"full_precision": 0, "language": 0}
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118
                size = math.prod(weights.get_slice(name).get_shape())
                kept = any(part.rsplit(".", 1)[-1] in name for part in FULL_PRECISION)
                counts["full_precision" if kept else "language"] += size
    return counts


def parameter_count(spec: ModelSpec, settings: Settings | None = None) -> int:
    return sum(parameter_counts(spec, settings).values())


def four_bit(settings: Settings) -> bool:
    """Whether the chat model loads with 4-bit weights (PLAYGROUND_CHAT_4BIT=1, on CUDA only)."""
    return settings.chat_4bit and select_device(settings).type == "cuda"


def form_bytes(spec: ModelSpec, form: str, settings: Settings | None = None) -> int:
    """Memory needed to load and run `spec` in `form` (a CPU form, "cuda" or "4bit")."""
    counts = parameter_counts(spec, settings)
    total = sum(counts.values())
    if form == "4bit":
        return int(total * 0.6 * MEMORY_MARGIN)
    if form == "cuda":
        return int(total * select_dtype(torch.device("cuda"), settings or get_settings()).itemsize * MEMORY_MARGIN)
    return int(_cpu_need(counts, form))


def candidate_forms(settings: Settings) -> list[str]:
    """The forms to try, best first, on this device with these settings."""
    if select_device(settings).type == "cuda":
        return ["4bit" if four_bit(settings) else "cuda"]
    if settings.chat_cpu_form != "auto":
        return [settings.chat_cpu_form]
    return ["float32", "int8"]


def choose_form(spec: ModelSpec, settings: Settings | None = None, available: int | None = None) -> str:
    """The first form that fits in the free memory; a clear refusal when none does."""
    settings = settings or get_settings()
    free = available_bytes(settings) if available is None else available
    forms = candidate_forms(settings)
    for form in forms:
        if form_bytes(spec, form, settings) <= free:
            return form
    needed = form_bytes(spec, forms[-1], settings)
    if select_device(settings).type == "cuda":
        hint = "" if settings.chat_4bit else " Set PLAYGROUND_CHAT_4BIT=1 to load it with 4-bit weights (bitsandbytes)."
        where = "GPU memory"
    else:
        form = "" if settings.chat_cpu_form == "auto" else f" in {settings.chat_cpu_form}"
        smaller = "" if "int8" in forms else ", use PLAYGROUND_CHAT_CPU_FORM=int8 (about a quarter of float32)"
        hint = (
            f" Free some memory{smaller}, run it on a GPU, or start the app in tiny mode (PLAYGROUND_TINY=1) to try it."
        )
        where = f"RAM{form}"
    raise ModelUnavailableError(
        f"{spec.name} needs about {_gb(needed)} of {where}, and only {_gb(free)} is free.{hint}"
    )


_chosen: dict[str, str] = {}
"""The form each chat model was last checked for; its loader follows it."""


def check_memory(spec: ModelSpec, settings: Settings | None = None, available: int | None = None) -> str:
    """Choose the form `spec` loads in (before loading), or refuse with a clear message."""
    form = choose_form(spec, settings, available)
    _chosen[spec.key] = form
    return form


def form_name(loaded: Any) -> str:
    """How a loaded chat model holds its weights, in words."""
    if loaded.device.type == "cuda":
        return FORM_NAMES["4bit" if four_bit(get_settings()) else "cuda"]
    if is_int8(loaded.model):
        return FORM_NAMES["int8"]
    return FORM_NAMES["bfloat16" if loaded.dtype == torch.bfloat16 else "float32"]


def required_bytes(spec: ModelSpec, settings: Settings | None = None) -> int:
    """Memory needed to load and run `spec` in the form this machine would choose with all memory free."""
    settings = settings or get_settings()
    return form_bytes(spec, candidate_forms(settings)[-1], settings)


def _cpu_form(spec: ModelSpec, settings: Settings) -> str:
    """The form the chat model loads in on the CPU: the one its memory check chose, else the best."""
    return _chosen.get(spec.key) or candidate_forms(settings)[0]


def load_options(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    """`from_pretrained` arguments for the chat model's form (core.models calls this when it loads)."""
    device = select_device(settings)
    if device.type == "cuda":
        return _four_bit_options(device, settings) if four_bit(settings) else {}
    form = _cpu_form(spec, settings)
    if form == "bfloat16":
        return {"dtype": torch.bfloat16}
    if form == "int8":
        return {"dtype": torch.bfloat16}  # swapped to int8 and float32 by after_load
    return {}


def _four_bit_options(device: torch.device, settings: Settings) -> dict[str, Any]:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelUnavailableError(
            "PLAYGROUND_CHAT_4BIT=1 needs the bitsandbytes package (pip install bitsandbytes, CUDA only); "
            "install it or unset PLAYGROUND_CHAT_4BIT."
        ) from None
    from transformers import BitsAndBytesConfig

    compute = select_dtype(device, settings)
    return {
        "quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute),
        "device_map": {"": device.index or 0},
    }


def after_load(spec: ModelSpec, settings: Settings, model: Any) -> Any:
    """The int8 form, from the model loaded in bfloat16: the language model's linear layers swapped for
    int8 ones, the rest cast to float32 (core.models calls this once loaded)."""
    if select_device(settings).type == "cpu" and _cpu_form(spec, settings) == "int8":
        quantize_linears(model, keep=FULL_PRECISION)
        model.to(torch.float32)
    return model


register_load_options(TASK, load_options)
register_after_load(TASK, after_load)


def available_bytes(settings: Settings | None = None) -> int:
    """Free GPU memory on CUDA, available RAM on the CPU."""
    return free_memory_bytes(select_device(settings or get_settings()))


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes < 10e9 else f"{nbytes / 1e9:.0f} GB"


FORM_NAMES = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "int8": "int8 weights (vision tower in float32)",
    "cuda": "float16",
    "4bit": "4-bit weights",
}


def device_notice(model_key: str = DEFAULT_MODEL, settings: Settings | None = None) -> str | None:
    """What running the real model on this machine's CPU costs, in the form it would load in (None on a GPU)."""
    settings = settings or get_settings()
    if select_device(settings).type == "cuda":
        return None
    spec = get_spec(model_key, TASK)
    real = {"language": int(spec.params_millions * 1e6) - VISION_PARAMS_FALLBACK}
    real["full_precision"] = VISION_PARAMS_FALLBACK
    sizes = {form: _gb(_real_bytes(real, form)) for form in CPU_FORMS}
    free = available_bytes(settings)
    fitting = [f for f in candidate_forms(settings) if _cpu_need(real, f) <= free]
    if fitting:
        form = fitting[0]
        where = f"With {_gb(free)} of free memory here it would load with {FORM_NAMES[form]}"
    else:
        form, where = "int8", f"It does not fit in the {_gb(free)} of memory free here"
    if form in CPU_SPEED:
        first, per_second = CPU_SPEED[form]
        speed = (
            f"On 2 CPU cores it reads the image for about {first:.0f} s before the first word, then writes about "
            f"{per_second:.2g} tokens a second"
        )
    else:
        speed = f"Its speed in {form} on 2 CPU cores was not measured (that machine has less memory than it needs)"
    return (
        f"{spec.name} on the CPU needs about {sizes['float32']} of RAM in float32, {sizes['bfloat16']} in "
        f"bfloat16 or {sizes['int8']} with int8 weights. {where}. {speed}; on a GPU it answers in seconds "
        "(float16, or 4-bit weights with PLAYGROUND_CHAT_4BIT=1)."
    )


def _real_bytes(counts: dict[str, int], form: str) -> float:
    """Bytes of the weights once loaded in a CPU form."""
    if form == "int8":
        return counts["language"] * 1.0 + counts["full_precision"] * 4
    return sum(counts.values()) * (2 if form == "bfloat16" else 4)


def _cpu_need(counts: dict[str, int], form: str) -> float:
    """Memory a CPU form needs: its weights with room to run, and for int8 the bfloat16 load before it."""
    need = _real_bytes(counts, form) * MEMORY_MARGIN
    if form == "int8":
        need = max(need, sum(counts.values()) * 2 * INT8_LOAD_MARGIN)
    return need
