"""ImageGPT: unconditional samples and completions of 32x32 images, rows streaming in as they are
sampled by the fast sampler (core.imagegpt_sampler).

Weights: "float32" samples exactly (the tests compare it with `generate`); "int8" runs the transformer's
linear layers with int8 weights on a CPU (core/int8.py): one image is about 2-3x faster there, because a
step of one image is bound by reading the weights, and the samples are not the exact ones for a seed
(the probabilities move slightly). On CUDA the model runs in float16 and "int8" is not used."""

from __future__ import annotations

import copy
import logging
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from core import checks
from core.backend import runs_in
from core.imagegpt_sampler import SIDE, FastSampler, SamplingOptions
from core.int8 import quantize_linears
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache
from core.registry import ModelSpec, get_spec, specs_for
from core.streaming import last

TASK = "imagegpt"
log = logging.getLogger(__name__)
MAX_IMAGES = 16
WEIGHTS = ("float32", "int8")


def imagegpt_models() -> list[ModelSpec]:
    return specs_for(TASK)


def validate_options(options: SamplingOptions, vocab: int = 512) -> None:
    checks.whole(options.num_images, "The number of images", 1, MAX_IMAGES)
    checks.number(options.temperature, "Temperature", 0.05, 5.0)
    checks.whole(options.top_k, "Top-k", 0, vocab)
    checks.number(options.top_p, "Top-p", 0.01, 1.0)
    checks.seed(options.seed)
    checks.choice(options.weights, "weights", WEIGHTS)


_samplers: weakref.WeakKeyDictionary[LoadedModel, dict[str, FastSampler]] = weakref.WeakKeyDictionary()
_samplers_lock = threading.Lock()


def int8_copy(model: Any) -> Any:
    """A copy of an ImageGPT model whose transformer's linear layers hold int8 weights; it shares every
    other tensor with `model` (embeddings, norms, output layer), so it costs only the int8 weights."""
    shared = {id(tensor): tensor for tensor in (*model.parameters(), *model.buffers())}
    twin = copy.deepcopy(model, memo=shared)
    quantize_linears(twin.transformer)
    return twin


def weights_used(loaded: LoadedModel, weights: str) -> str:
    """The weights a request asking for `weights` samples with on this model's device."""
    if loaded.device.type != "cpu":
        return str(loaded.dtype).removeprefix("torch.")
    return weights


def sampler_for(loaded: LoadedModel, weights: str = "float32") -> FastSampler:
    """One sampler per loaded model and weights, dropped with the model when the model cache lets it go."""
    with _samplers_lock:
        samplers = _samplers.setdefault(loaded, {})
        if weights not in samplers:
            model = int8_copy(loaded.model) if weights == "int8" else loaded.model
            samplers[weights] = FastSampler(model)
        return samplers[weights]


def clusters_of(loaded: LoadedModel) -> np.ndarray:
    return np.asarray(loaded.processor.clusters, dtype=np.float64)


def tokens_to_images(tokens: np.ndarray | torch.Tensor, clusters: np.ndarray, rows: int = SIDE) -> list[Image.Image]:
    """32x32 RGB images from tokens (B, t <= 1024); rows not sampled yet are grey."""
    tokens = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens)
    colours = np.clip(np.round((clusters + 1.0) * 127.5), 0, 255).astype(np.uint8)
    images = []
    for row in tokens:
        pixels = np.full((SIDE * SIDE, 3), 128, dtype=np.uint8)
        pixels[: len(row)] = colours[row]
        images.append(Image.fromarray(pixels.reshape(SIDE, SIDE, 3)))
    return images


def quantise(image: Image.Image, loaded: LoadedModel) -> np.ndarray:
    """The 1024 palette tokens of an image, as the model's processor computes them."""
    return np.asarray(loaded.processor(images=image, return_tensors="np")["input_ids"][0], dtype=np.int64)


def kept_part(image: Image.Image, kept_rows: int) -> Image.Image:
    """The top `kept_rows` rows of a 32x32 image, the rest grey."""
    pixels = np.asarray(image).copy()
    pixels[kept_rows:] = 128
    return Image.fromarray(pixels)


@dataclass
class Samples:
    model: str
    tokens: np.ndarray
    """(B, t) palette indices."""
    images: list[Image.Image]
    """32x32 RGB."""
    kept_rows: int = 0
    quantised: Image.Image | None = None
    weights: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "weights": self.weights,
            "num_images": len(self.images),
            "rows_done": int(self.tokens.shape[1]) // SIDE,
            "kept_rows": self.kept_rows,
            "tokens": self.tokens.tolist(),
        }


def _stream(
    model_key: str,
    options: SamplingOptions,
    image: Image.Image | None,
    kept_rows: int,
    cache: ModelCache | None,
) -> Iterator[Samples]:
    spec = get_spec(model_key, TASK)
    validate_options(options)
    loaded, _ = (cache or get_cache()).get(spec.key)
    clusters = clusters_of(loaded)
    weights = weights_used(loaded, options.weights)
    sampler = sampler_for(loaded, "int8" if weights == "int8" else "float32")
    prefix, quantised = None, None
    if image is not None:
        kept_rows = checks.whole(kept_rows, "Rows to keep", 1, SIDE - 1)
        full = quantise(image, loaded)
        quantised = tokens_to_images(full[None], clusters)[0]
        prefix = torch.as_tensor(full[: kept_rows * SIDE]).repeat(options.num_images, 1)
    else:
        kept_rows = 0
    for tokens in sampler.stream(options.num_images, options, prefix, device=loaded.device):
        numpy_tokens = tokens.cpu().numpy()
        images = tokens_to_images(numpy_tokens, clusters)
        yield Samples(spec.key, numpy_tokens, images, kept_rows, quantised, weights)


@runs_in("imagegpt")
def sample_stream(model_key: str, options: SamplingOptions, *, cache: ModelCache | None = None) -> Iterator[Samples]:
    """Unconditional samples, yielded after every row; the last one is complete."""
    yield from _stream(model_key, options, None, 0, cache)


@runs_in("imagegpt")
def complete_stream(
    image: Image.Image, model_key: str, kept_rows: int, options: SamplingOptions, *, cache: ModelCache | None = None
) -> Iterator[Samples]:
    """Completions of the top `kept_rows` rows of an image's 32x32 palette version."""
    yield from _stream(model_key, options, image, kept_rows, cache)


def sample(model_key: str, options: SamplingOptions, *, cache: ModelCache | None = None) -> Samples:
    return last(sample_stream(model_key, options, cache=cache))


def complete(
    image: Image.Image, model_key: str, kept_rows: int, options: SamplingOptions, *, cache: ModelCache | None = None
) -> Samples:
    return last(complete_stream(image, model_key, kept_rows, options, cache=cache))
