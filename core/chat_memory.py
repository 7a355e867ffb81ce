"""Whether ViP-LLaVA fits, and in which form: its size on disk, the memory each form needs, the memory
that is free, the form chosen for this machine, and a clear refusal before loading when none fits.

Forms on the CPU (PLAYGROUND_CHAT_CPU_FORM, default "auto"):
- "float32": exact; 4 bytes per parameter (about 28 GB for 7B: more than a free CPU Space has).
- "bfloat16": 2 bytes per parameter; chosen automatically only on CPUs that compute in it natively
  (AVX-512 BF16 or AMX), where it is not slower than float32.
- "int8": the language model's linear layers with int8 weights (torchao's weight-only quantization,
  applied while the checkpoint loads, so float32 weights are never all in memory); the vision tower,
  the projector and the output layer stay in float32. About 1 byte per parameter: 7B fits in 16 GB.
"auto" takes the first of float32, bfloat16 (where native), int8 that fits in the free memory.
On CUDA the model runs in float16/bfloat16, or 4-bit with PLAYGROUND_CHAT_4BIT=1 (bitsandbytes).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailableError
from core.lazy import torch
from core.models import ensure_tiny_model, register_load_options, select_device, select_dtype
from core.registry import ModelSpec, get_spec
from core.settings import Settings, get_settings

TASK = "chat"
DEFAULT_MODEL = "vip-llava-7b"
MEMORY_MARGIN = 1.2
"""Weights times this: room for activations, the key/value cache and the processor."""
CPU_FORMS = ("float32", "bfloat16", "int8")
FULL_PRECISION = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
"""Parts that keep float32 weights in the int8 form (the image features and the output scores)."""
VISION_PARAMS_FALLBACK = 324_000_000
"""CLIP ViT-L/336 (303M) and the projector, when the checkpoint is not on disk to count them."""
CPU_SPEED = {"int8": (240.0, 9.0), "bfloat16": (190.0, 6.0), "float32": (150.0, 5.0)}
"""Seconds before the first word (576 image tokens and the prompt) and seconds per further word of
ViP-LLaVA-7B on 2 CPU cores, per form, from benchmarks/RESULTS.md ("chat-cpu"); for the notice."""


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


@cache
def native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX): there bfloat16 is fast."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(flag in flags for flag in (" avx512_bf16", " amx_bf16"))


def form_bytes(spec: ModelSpec, form: str, settings: Settings | None = None) -> int:
    """Memory needed to load and run `spec` in `form` (a CPU form, "cuda" or "4bit")."""
    counts = parameter_counts(spec, settings)
    total = sum(counts.values())
    if form == "4bit":
        per = total * 0.6
    elif form == "cuda":
        per = total * select_dtype(torch.device("cuda"), settings or get_settings()).itemsize
    elif form == "int8":
        per = counts["language"] * 1.0 + counts["full_precision"] * 4
    else:
        per = total * (2 if form == "bfloat16" else 4)
    return int(per * MEMORY_MARGIN)


def candidate_forms(settings: Settings) -> list[str]:
    """The forms to try, best first, on this device with these settings."""
    if select_device(settings).type == "cuda":
        return ["4bit" if four_bit(settings) else "cuda"]
    if settings.chat_cpu_form != "auto":
        return [settings.chat_cpu_form]
    return ["float32", *(["bfloat16"] if native_bfloat16() else []), "int8"]


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
    if any(hasattr(p, "qdata") for p in loaded.model.parameters()):
        return FORM_NAMES["int8"]
    return FORM_NAMES["bfloat16" if loaded.dtype == torch.bfloat16 else "float32"]


def required_bytes(spec: ModelSpec, settings: Settings | None = None) -> int:
    """Memory needed to load and run `spec` in the form this machine would choose with all memory free."""
    settings = settings or get_settings()
    return form_bytes(spec, candidate_forms(settings)[-1], settings)


def load_options(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    """`from_pretrained` arguments for the chat model's form (core.models calls this when it loads)."""
    device = select_device(settings)
    if device.type == "cuda":
        return _four_bit_options(device, settings) if four_bit(settings) else {}
    form = _chosen.get(spec.key) or candidate_forms(settings)[0]
    if form == "bfloat16":
        return {"dtype": torch.bfloat16}
    if form == "int8":
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        config = TorchAoConfig(Int8WeightOnlyConfig(), modules_to_not_convert=list(FULL_PRECISION))
        return {"dtype": torch.float32, "quantization_config": config}
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


register_load_options(TASK, load_options)


def available_bytes(settings: Settings | None = None) -> int:
    """Free GPU memory on CUDA, available RAM on the CPU."""
    device = select_device(settings or get_settings())
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


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
    fitting = [f for f in candidate_forms(settings) if _real_bytes(real, f) * MEMORY_MARGIN <= free]
    if fitting:
        form = fitting[0]
        where = f"With {_gb(free)} of free memory here it would load with {FORM_NAMES[form]}"
    else:
        form, where = "int8", f"It does not fit in the {_gb(free)} of memory free here"
    first, per_word = CPU_SPEED[form]
    return (
        f"{spec.name} on the CPU needs about {sizes['float32']} of RAM in float32, {sizes['bfloat16']} in "
        f"bfloat16 or {sizes['int8']} with int8 weights. {where}. On 2 CPU cores it reads the image for about "
        f"{first / 60:.0f} minutes before the first word, then writes a word every {per_word:.0f} s or so; on a GPU "
        "it answers in seconds (float16, or 4-bit weights with PLAYGROUND_CHAT_4BIT=1)."
    )


def _real_bytes(counts: dict[str, int], form: str) -> float:
    if form == "int8":
        return counts["language"] * 1.0 + counts["full_precision"] * 4
    return sum(counts.values()) * (2 if form == "bfloat16" else 4)
