"""ImageGPT: unconditional samples and completions of 32x32 images, with a fast sampler.

The sampler runs the model's own layers over a key/value cache allocated once for all
n_positions tokens, so a step costs one pass over the layers for one token per image, without
the per-step bookkeeping of `generate` (logits processors, growing caches, output objects).
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import InputError
from core.models import LoadedModel, ModelCache, get_cache
from core.registry import ModelSpec, get_spec, specs_for

TASK = "imagegpt"
T = TypeVar("T")
SIDE = 32
MAX_IMAGES = 16


@dataclass(frozen=True)
class SamplingOptions:
    num_images: int = 4
    temperature: float = 1.0
    top_k: int = 0
    """Keep only the k most likely colours at each step (0: no limit; 1: greedy)."""
    top_p: float = 1.0
    """Keep the smallest set of colours whose probabilities add up to top_p (1: no limit)."""
    seed: int = 0


def imagegpt_models() -> list[ModelSpec]:
    return specs_for(TASK)


def validate_options(options: SamplingOptions, vocab: int = 512) -> None:
    def number(name: str, value: Any, low: float, high: float, whole: bool = False) -> None:
        bad_type = isinstance(value, bool) or not isinstance(value, int | float)
        if bad_type or not math.isfinite(value) or (whole and value != int(value)) or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise InputError(f"{name} must be {kind} from {low:g} to {high:g}.")

    number("The number of images", options.num_images, 1, MAX_IMAGES, whole=True)
    number("Temperature", options.temperature, 0.05, 5.0)
    number("Top-k", options.top_k, 0, vocab, whole=True)
    number("Top-p", options.top_p, 0.01, 1.0)
    number("The seed", options.seed, 0, 2**63 - 1, whole=True)


class FastSampler:
    """Samples ImageGPT tokens with a preallocated key/value cache, reusing the model's weights."""

    def __init__(self, model: Any) -> None:
        config = model.config
        if config.add_cross_attention or config.reorder_and_upcast_attn:
            raise ValueError("the fast sampler supports ImageGPT without cross-attention or upcast attention")
        self.model = model
        self.transformer = model.transformer
        self.layers = list(model.transformer.h)
        self.heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.positions = config.n_positions
        self.sos = config.vocab_size - 1
        self.scale = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        self.layer_scales = [
            self.scale / (index + 1) if config.scale_attn_by_inverse_layer_idx else self.scale
            for index in range(len(self.layers))
        ]

    @staticmethod
    def _norm(layer_norm: Any, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + layer_norm.eps) * layer_norm.weight

    def _forward(
        self, tokens: torch.Tensor, start: int, cache: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Run `tokens` (B, L) at positions start..start+L-1, filling the cache; logits of the last one."""
        batch, length = tokens.shape
        if length > 1 and start > 0:
            raise ValueError("several tokens at once only from position 0 (prefill)")
        end = start + length
        positions = torch.arange(start, end, device=tokens.device)
        x = self.transformer.wte(tokens) + self.transformer.wpe(positions)
        for layer, (keys, values), scale in zip(self.layers, cache, self.layer_scales, strict=True):
            attention = layer.attn
            q, k, v = attention.c_attn(self._norm(layer.ln_1, x)).split(attention.split_size, dim=2)
            q = q.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            keys[:, :, start:end] = k.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            values[:, :, start:end] = v.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            attended = F.scaled_dot_product_attention(
                q, keys[:, :, :end], values[:, :, :end], is_causal=length > 1 and start == 0, scale=scale
            )
            x = x + attention.c_proj(attended.transpose(1, 2).reshape(batch, length, -1))
            x = x + layer.mlp(self._norm(layer.ln_2, x))
        return self.model.lm_head(self._norm(self.transformer.ln_f, x[:, -1]))

    @torch.inference_mode()
    def stream(
        self,
        batch: int,
        options: SamplingOptions,
        prefix: torch.Tensor | None = None,
        device: torch.device | None = None,
        every: int = SIDE,
    ) -> Iterator[torch.Tensor]:
        """Yield the tokens (B, t) sampled so far every `every` tokens and at the end.

        `prefix` (B, P) are image tokens kept as they are (completion); sampling fills the rest.
        """
        device = device or next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        shape = (batch, self.heads, self.positions, self.head_dim)
        cache = [
            (torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype))
            for _ in self.layers
        ]
        generator = torch.Generator(device=device).manual_seed(int(options.seed))
        tokens = torch.empty((batch, self.positions), dtype=torch.long, device=device)
        start = torch.full((batch, 1), self.sos, dtype=torch.long, device=device)
        kept = 0 if prefix is None else prefix.shape[1]
        if kept:
            tokens[:, :kept] = prefix.to(device)
            start = torch.cat([start, tokens[:, :kept]], dim=1)
        logits = self._forward(start, 0, cache)
        for position in range(kept, self.positions):
            if position > kept:
                logits = self._forward(tokens[:, position - 1 : position], position, cache)
            tokens[:, position] = _sample(logits, options, generator)
            if (position + 1) % every == 0 or position + 1 == self.positions:
                yield tokens[:, : position + 1].clone()

    def sample(self, batch: int, options: SamplingOptions, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """All n_positions tokens of `batch` images."""
        return _last(self.stream(batch, options, prefix, every=self.positions))


def _sample(logits: torch.Tensor, options: SamplingOptions, generator: torch.Generator) -> torch.Tensor:
    logits = logits.float()
    if options.top_k == 1:
        return logits.argmax(-1)
    logits = logits / options.temperature
    if 0 < options.top_k < logits.shape[-1]:
        threshold = logits.topk(options.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if options.top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= options.top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


_samplers: dict[int, FastSampler] = {}
_samplers_lock = threading.Lock()


def sampler_for(loaded: LoadedModel) -> FastSampler:
    with _samplers_lock:
        sampler = _samplers.get(id(loaded.model))
        if sampler is None or sampler.model is not loaded.model:
            sampler = _samplers[id(loaded.model)] = FastSampler(loaded.model)
        return sampler


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "num_images": len(self.images),
            "rows_done": int(self.tokens.shape[1]) // SIDE,
            "kept_rows": self.kept_rows,
            "tokens": self.tokens.tolist(),
        }


ProgressFn = Callable[[float, str], None]


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
    sampler = sampler_for(loaded)
    prefix, quantised = None, None
    if image is not None:
        if isinstance(kept_rows, bool) or not isinstance(kept_rows, int | float) or kept_rows != int(kept_rows):
            raise InputError(f"Rows to keep must be a whole number from 1 to {SIDE - 1}.")
        if not 1 <= kept_rows <= SIDE - 1:
            raise InputError(f"Rows to keep must be from 1 to {SIDE - 1}, not {kept_rows}.")
        kept_rows = int(kept_rows)
        full = quantise(image, loaded)
        quantised = tokens_to_images(full[None], clusters)[0]
        prefix = torch.as_tensor(full[: kept_rows * SIDE]).repeat(options.num_images, 1)
    else:
        kept_rows = 0
    for tokens in sampler.stream(options.num_images, options, prefix, device=loaded.device):
        numpy_tokens = tokens.cpu().numpy()
        yield Samples(spec.key, numpy_tokens, tokens_to_images(numpy_tokens, clusters), kept_rows, quantised)


def sample_stream(model_key: str, options: SamplingOptions, *, cache: ModelCache | None = None) -> Iterator[Samples]:
    """Unconditional samples, yielded after every row; the last one is complete."""
    return _stream(model_key, options, None, 0, cache)


def complete_stream(
    image: Image.Image, model_key: str, kept_rows: int, options: SamplingOptions, *, cache: ModelCache | None = None
) -> Iterator[Samples]:
    """Completions of the top `kept_rows` rows of an image's 32x32 palette version."""
    return _stream(model_key, options, image, kept_rows, cache)


def sample(model_key: str, options: SamplingOptions, *, cache: ModelCache | None = None) -> Samples:
    return _last(sample_stream(model_key, options, cache=cache))


def complete(
    image: Image.Image, model_key: str, kept_rows: int, options: SamplingOptions, *, cache: ModelCache | None = None
) -> Samples:
    return _last(complete_stream(image, model_key, kept_rows, options, cache=cache))


def _last(stream: Iterator[T]) -> T:
    """The final item of a stream (the complete result)."""
    return collections.deque(stream, maxlen=1).pop()
