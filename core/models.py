"""The model cache: lazy loading, one load per model under a lock, device and dtype, eviction.

Everything that decides where a model lives and in which precision is here, once.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailableError
from core.int8 import int8_bytes
from core.lazy import no_grad, torch
from core.registry import REGISTRY, ModelSpec, get_spec
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
_IMPORT_LOCK = threading.Lock()

TINY_FORMAT_VERSION = 2
_TINY_MARKER = "tiny-model.json"


@dataclass(eq=False)  # compared and hashed by identity (helpers keep per-model state in weak maps)
class LoadedModel:
    spec: ModelSpec
    model: Any
    processor: Any
    device: torch.device
    dtype: torch.dtype
    nbytes: int
    load_seconds: float
    tokenizer: Any = None
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Name lists of `spec.label_files` by file stem ("objects", "answers"; core/label_files.py)."""


def select_device(settings: Settings) -> torch.device:
    if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def select_dtype(device: torch.device, settings: Settings) -> torch.dtype:
    """fp32 on CPU; on CUDA bf16 where the GPU supports it, else fp16 (or the configured dtype)."""
    if device.type != "cuda":
        return torch.float32
    if settings.gpu_dtype != "auto":
        return getattr(torch, settings.gpu_dtype)
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def model_class_of(spec: ModelSpec) -> Any:
    """The class that builds and loads `spec`: a transformers class, or one of this project's
    (`spec.model_module`) with the same from_pretrained / save_pretrained."""
    import importlib

    return getattr(importlib.import_module(spec.model_module or "transformers"), spec.model_class)


def tiny_model_dir(spec: ModelSpec, settings: Settings) -> Path:
    return settings.tiny_dir / f"v{TINY_FORMAT_VERSION}" / spec.slug


def ensure_tiny_model(spec: ModelSpec, settings: Settings) -> Path:
    """Build and save the tiny random model of `spec` once; later calls reuse the saved folder."""
    target = tiny_model_dir(spec, settings)
    if (target / _TINY_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.slug}-", dir=target.parent))
    try:
        config, *preprocessors = spec.build_tiny()
        model = model_class_of(spec)(config)
        _spread_random_weights(model, seed=zlib.crc32(spec.key.encode()))
        if hasattr(model, "settle_random_weights"):  # a project model whose random weights need settling
            model.settle_random_weights()
        model.save_pretrained(staging)
        for preprocessor in preprocessors:
            preprocessor.save_pretrained(staging)
        marker = {"key": spec.key, "hub_id": spec.hub_id, "note": "tiny random weights, not the real model"}
        (staging / _TINY_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        try:
            staging.replace(target)
        except OSError:
            if not (target / _TINY_MARKER).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@no_grad
def _spread_random_weights(model: torch.nn.Module, seed: int) -> None:
    """Redraw every weight at a variance-preserving scale. The library's initialisation (small
    normals, zero biases, identity norms) makes a tiny untrained network answer the same for every
    image; these weights keep its outputs input-dependent. Still random: nothing is trained. A scalar
    parameter (a contrastive model's logit scale) keeps the value its config gives it."""
    generator = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if not param.is_floating_point() or param.dim() == 0:
            continue
        if param.dim() >= 2:
            std = (param.numel() // param.shape[0]) ** -0.5
            mean = 0.0
        else:
            std, mean = 0.1, (1.0 if name.endswith("weight") else 0.0)
        param.copy_(torch.randn(param.shape, generator=generator) * std + mean)


def _unavailable_message(spec: ModelSpec, error: BaseException) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    what = f"{spec.name} ({spec.hub_id})"
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return (
            f"Not enough memory to load {what}. Choose fewer or smaller models, "
            "or lower PLAYGROUND_MEMORY_BUDGET_MB so that idle models are unloaded sooner."
        )
    if isinstance(error, GatedRepoError):
        return f"{what} is gated on the Hugging Face Hub: accept its terms and log in (HF_TOKEN)."
    if isinstance(error, RepositoryNotFoundError):
        return f"{what} was not found on the Hugging Face Hub."
    if isinstance(error, OSError):
        return (
            f"Could not get the weights of {what}: the Hugging Face Hub is not reachable and they are "
            f"not in the local cache. Run `python -m core.download --model {spec.key}` once while online, "
            "or start the app in tiny mode (PLAYGROUND_TINY=1) to try it with random weights."
        )
    return f"Could not load {what}: {type(error).__name__}: {str(error)[:200]}"


LoadOptions = Callable[[ModelSpec, Settings], dict[str, Any]]
_load_options: dict[str, LoadOptions] = {}


def register_load_options(task: str, options: LoadOptions) -> None:
    """Let a task add `from_pretrained` arguments for its models (the chat model's form: int8 weights,
    bfloat16, 4-bit on CUDA; core.chat_memory)."""
    _load_options[task] = options


def load_options(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    options = _load_options.get(spec.task)
    return options(spec, settings) if options else {}


AfterLoad = Callable[[ModelSpec, Settings, Any], Any]
_after_load: dict[str, AfterLoad] = {}


def register_after_load(task: str, after: AfterLoad) -> None:
    """Let a task change its models once loaded (the chat model's int8 layers; core.chat_memory)."""
    _after_load[task] = after


def tensor_bytes(tensor: Any) -> int:
    """Bytes a weight takes, also when it is a quantized tensor (its int8 data and its scales)."""
    parts = [getattr(tensor, name) for name in ("qdata", "scale", "zero_point") if hasattr(tensor, name)]
    if parts:
        return sum(part.numel() * part.element_size() for part in parts if part is not None)
    return tensor.numel() * tensor.element_size()


IMAGE_PROCESSOR_BACKEND = "pil"
"""transformers 5 picks torchvision-based image processors when torchvision is installed (as it often is
on GPU machines and Spaces images) and PIL-based ones otherwise; their resizing differs slightly. The
app always asks for the PIL ones, so its results do not depend on what else is installed."""


def load_preprocessor(processor_class: Any, source: str) -> Any:
    """An image processor, or a processor whose image processor is replaced by the PIL-backed one
    (the backend is asked of the image processor alone: a processor passes its keyword arguments on to
    its tokenizer too)."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_utils import BaseImageProcessor

    if processor_class is AutoImageProcessor or issubclass(processor_class, BaseImageProcessor):
        return processor_class.from_pretrained(source, backend=IMAGE_PROCESSOR_BACKEND)
    processor = processor_class.from_pretrained(source)
    if getattr(processor, "image_processor", None) is not None:
        processor.image_processor = AutoImageProcessor.from_pretrained(source, backend=IMAGE_PROCESSOR_BACKEND)
    return processor


def load_model(spec: ModelSpec, settings: Settings | None = None) -> LoadedModel:
    """Load `spec` with `from_pretrained` from the hub cache, or from the tiny folder in tiny mode."""
    import transformers

    from core.label_files import read_label_files
    from core.runtime import configure_threads

    settings = settings or get_settings()
    configure_threads()
    start = time.perf_counter()
    try:
        extra = load_options(spec, settings)
        source = str(ensure_tiny_model(spec, settings)) if settings.tiny else spec.hub_id
        device = select_device(settings)
        dtype = select_dtype(device, settings)
        with _IMPORT_LOCK:  # transformers imports lazily; first uses from two threads at once can clash
            model_class = model_class_of(spec)
            processor_class = getattr(transformers, spec.processor_class) if spec.processor_class else None
            tokenizer_class = getattr(transformers, spec.tokenizer_class) if spec.tokenizer_class else None
        # transformers 5 picks SDPA attention for every (sub)model that supports it, eager otherwise
        kwargs = {"dtype": dtype, **extra}
        dtype = kwargs["dtype"]
        if "quantization_config" in kwargs:  # placed by the quantizer
            model = model_class.from_pretrained(source, **kwargs).eval()
        else:
            model = model_class.from_pretrained(source, **kwargs).to(device).eval()
        if spec.task in _after_load:
            model = _after_load[spec.task](spec, settings, model)
            dtype = getattr(model, "dtype", dtype)  # it may have cast the model
        processor = load_preprocessor(processor_class, source) if processor_class else None
        tokenizer_source = spec.tokenizer_hub_id if spec.tokenizer_hub_id and not settings.tiny else source
        tokenizer = tokenizer_class.from_pretrained(tokenizer_source) if tokenizer_class else None
        labels = read_label_files(spec, settings)
    except ModelUnavailableError:
        raise  # already says what to do (core/label_files.py)
    except Exception as error:
        if isinstance(error, torch.OutOfMemoryError):
            gc.collect()
            torch.cuda.empty_cache()
        log.warning("loading %s failed: %r", spec.key, error)
        raise ModelUnavailableError(_unavailable_message(spec, error)) from error
    nbytes = sum(tensor_bytes(t) for t in (*model.parameters(), *model.buffers())) + int8_bytes(model)
    seconds = time.perf_counter() - start
    return LoadedModel(spec, model, processor, device, dtype, nbytes, seconds, tokenizer, labels)


class ModelCache:
    """Loads each model once, even when many threads ask at once; evicts the least recently used
    models when the loaded total exceeds `budget_bytes` (the model just asked for always stays)."""

    def __init__(self, budget_bytes: int, loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        self.budget_bytes = budget_bytes
        self._loader = loader
        self._models: OrderedDict[str, Any] = OrderedDict()
        """Registry keys -> LoadedModel; other keys (get_other) -> what their loader returned."""
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.loads: dict[str, int] = {}

    def get(self, key: str) -> tuple[LoadedModel, bool]:
        """The loaded model for a registry key, and whether this call loaded it."""
        spec = get_spec(key)
        return self._get(key, lambda: self._loader(spec))

    def get_other(self, key: str, load: Callable[[], Any]) -> tuple[Any, bool]:
        """Like `get`, for a model that is no registry checkpoint (the Inside tab's DALL-E tokenizer):
        `load()` returns it with an `nbytes` attribute; it shares the memory budget, the eviction and the
        one load per key. `key` must not be a registry key."""
        if key in REGISTRY:
            raise ValueError(f"{key!r} is a registry key: use get()")
        return self._get(key, load)

    def _get(self, key: str, load: Callable[[], Any]) -> tuple[Any, bool]:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key], False
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key], False
            try:
                loaded = load()
            except ModelUnavailableError as error:
                if not (is_out_of_memory(error.__cause__) and self.loaded_keys()):
                    raise
                log.warning("not enough memory to load %s: unloading the other models and retrying", key)
                self.clear()
                loaded = load()
            with self._lock:
                self.loads[key] = self.loads.get(key, 0) + 1
                self._models[key] = loaded
                evicted = self._evict_over_budget(keep=key)
        if evicted:
            log.info("evicted %s to stay within the memory budget", ", ".join(evicted))
            release_memory()
        return loaded, True

    def _evict_over_budget(self, keep: str) -> list[str]:
        evicted = []
        while self.total_bytes() > self.budget_bytes and len(self._models) > 1:
            oldest = next(k for k in self._models if k != keep)
            del self._models[oldest]
            evicted.append(oldest)
        return evicted

    def total_bytes(self) -> int:
        return sum(m.nbytes for m in self._models.values())

    def loaded_keys(self) -> list[str]:
        """Keys of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
        release_memory()


def free_memory_bytes(device: Any) -> int:
    """Memory free now where `device` computes: the GPU's free memory on CUDA, else the machine's
    available RAM."""
    if getattr(device, "type", str(device)) == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for display and JSON."""
    return round(seconds * 1000, 2)


def load_for(key: str, task: str, cache: ModelCache | None = None) -> tuple[LoadedModel, float | None]:
    """The loaded model of a registry key of `task` (InputError for another), and its load time in
    milliseconds when this call loaded it (None when it was already loaded)."""
    get_spec(key, task)
    loaded, was_loaded = (cache or get_cache()).get(key)
    return loaded, ms(loaded.load_seconds) if was_loaded else None


def release_memory() -> None:
    """Return freed memory to the system (and cached CUDA blocks to the driver)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError | MemoryError)


_default_cache: ModelCache | None = None
_default_cache_lock = threading.Lock()


def get_cache() -> ModelCache:
    """The process-wide model cache, sized by PLAYGROUND_MEMORY_BUDGET_MB."""
    global _default_cache
    with _default_cache_lock:
        if _default_cache is None:
            _default_cache = ModelCache(get_settings().memory_budget_mb * 1024 * 1024)
        return _default_cache


def reset_cache() -> None:
    """Drop the process-wide cache (tests; settings changes)."""
    global _default_cache
    with _default_cache_lock:
        if _default_cache is not None:
            _default_cache.clear()
        _default_cache = None
