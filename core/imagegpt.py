"""ImageGPT: unconditional samples and completions of 32x32 images, with a fast sampler.

The sampler runs the model's own layers over a key/value cache allocated once for all
n_positions tokens, so a step costs one pass over the layers for one token per image, without
the per-step bookkeeping of `generate` (logits processors, growing caches, output objects).
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.errors import InputError
from core.lazy import F, inference_mode, torch
from core.models import LoadedModel, ModelCache, get_cache
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import get_settings
from core.streaming import last

if TYPE_CHECKING:
    from torch import Tensor

TASK = "imagegpt"
log = logging.getLogger(__name__)
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
    """Samples ImageGPT tokens with a preallocated key/value cache, reusing the model's weights.

    `mode` picks how a sampling step runs:
    - "dynamic": attention reads the cache up to the current position (the least work; on CPU).
    - "static": every step has the same shapes (the position is a tensor, attention reads the whole
      cache under a mask), so the step can be recorded once and replayed; run eagerly here.
    - "cuda-graph": the static step recorded in a CUDA graph at the start of each request (a few
      steps' work, with its own cache, freed at the end) and replayed for every token, removing the
      launch cost of its few hundred small kernels. Falls back to "dynamic" if recording fails.
    - "auto": "cuda-graph" on CUDA when PLAYGROUND_IMAGEGPT_CUDA_GRAPHS allows it, else "dynamic".
    """

    MODES = ("auto", "dynamic", "static", "cuda-graph")

    def __init__(self, model: Any, mode: str = "auto") -> None:
        config = model.config
        if config.add_cross_attention or config.reorder_and_upcast_attn:
            raise ValueError("the fast sampler supports ImageGPT without cross-attention or upcast attention")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}, not {mode!r}")
        self.model = model
        self.mode = mode
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
        self.graph_error: str | None = None
        """Why recording a CUDA graph failed (the sampler then runs "dynamic"), if it did."""

    def resolved_mode(self, device: torch.device) -> str:
        if self.mode != "auto":
            return self.mode
        use_graphs = device.type == "cuda" and get_settings().imagegpt_cuda_graphs and self.graph_error is None
        return "cuda-graph" if use_graphs else "dynamic"

    @staticmethod
    def _norm(layer_norm: Any, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + layer_norm.eps) * layer_norm.weight

    def _layers(
        self,
        x: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]],
        attend: Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, float], Tensor],
    ) -> torch.Tensor:
        """The transformer blocks over `x` (B, L, E); `attend(q, k, v, keys, values, scale)` stores the new
        keys/values in the cache and attends; logits of the last position."""
        batch, length, _ = x.shape
        for layer, (keys, values), scale in zip(self.layers, cache, self.layer_scales, strict=True):
            attention = layer.attn
            q, k, v = (
                part.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
                for part in attention.c_attn(self._norm(layer.ln_1, x)).split(attention.split_size, dim=2)
            )
            attended = attend(q, k, v, keys, values, scale)
            x = x + attention.c_proj(attended.transpose(1, 2).reshape(batch, length, -1))
            x = x + layer.mlp(self._norm(layer.ln_2, x))
        return self.model.lm_head(self._norm(self.transformer.ln_f, x[:, -1]))

    def _forward(
        self, tokens: torch.Tensor, start: int, cache: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Run `tokens` (B, L) at positions start..start+L-1, filling the cache; logits of the last one."""
        length = tokens.shape[1]
        if length > 1 and start > 0:
            raise ValueError("several tokens at once only from position 0 (prefill)")
        end = start + length

        def attend(q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, scale: float) -> Tensor:
            keys[:, :, start:end] = k
            values[:, :, start:end] = v
            causal = length > 1 and start == 0
            return F.scaled_dot_product_attention(
                q, keys[:, :, :end], values[:, :, :end], is_causal=causal, scale=scale
            )

        positions = torch.arange(start, end, device=tokens.device)
        return self._layers(self.transformer.wte(tokens) + self.transformer.wpe(positions), cache, attend)

    def _static_step(
        self, token: torch.Tensor, position: torch.Tensor, cache: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """One token per image (B, 1) at `position` (a 1-element tensor): the same shapes and the same
        kernels at every position. Cache entries after `position` must hold finite values (zeros)."""
        visible = (torch.arange(self.positions, device=token.device) <= position).view(1, 1, 1, -1)

        def attend(q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, scale: float) -> Tensor:
            keys.index_copy_(2, position, k)
            values.index_copy_(2, position, v)
            return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, scale=scale)

        return self._layers(self.transformer.wte(token) + self.transformer.wpe(position), cache, attend)

    def _new_cache(
        self, batch: int, device: torch.device, dtype: torch.dtype, zeros: bool
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (batch, self.heads, self.positions, self.head_dim)
        make = torch.zeros if zeros else torch.empty
        return [(make(shape, device=device, dtype=dtype), make(shape, device=device, dtype=dtype)) for _ in self.layers]

    def _stepper(self, batch: int, device: torch.device, dtype: torch.dtype, mode: str) -> _Stepper:
        if mode == "dynamic":
            return _DynamicStep(self, self._new_cache(batch, device, dtype, zeros=False))
        if mode == "static":
            return _StaticStep(self, self._new_cache(batch, device, dtype, zeros=True), device)
        try:
            return _GraphStep(self, batch, device, dtype)
        except Exception as error:  # any recording failure leaves the eager path working
            self.graph_error = f"{type(error).__name__}: {error}"
            log.warning("ImageGPT: CUDA graph not recorded (%s); sampling without it", self.graph_error)
            return self._stepper(batch, device, dtype, "dynamic")

    @inference_mode
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
        stepper = self._stepper(batch, device, dtype, self.resolved_mode(device))
        generator = torch.Generator(device=device).manual_seed(int(options.seed))
        tokens = torch.empty((batch, self.positions), dtype=torch.long, device=device)
        start = torch.full((batch, 1), self.sos, dtype=torch.long, device=device)
        kept = 0 if prefix is None else prefix.shape[1]
        if kept:
            tokens[:, :kept] = prefix.to(device)
            start = torch.cat([start, tokens[:, :kept]], dim=1)
        logits = stepper.prefill(start)
        for position in range(kept, self.positions):
            if position > kept:
                logits = stepper.step(tokens[:, position - 1 : position], position)
            tokens[:, position] = _sample(logits, options, generator)
            if (position + 1) % every == 0 or position + 1 == self.positions:
                yield tokens[:, : position + 1].clone()

    def sample(self, batch: int, options: SamplingOptions, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """All n_positions tokens of `batch` images."""
        return last(self.stream(batch, options, prefix, every=self.positions))


class _Stepper:
    """Runs the sampler's model steps over one cache: `prefill` the first tokens, then one `step` a token."""

    def __init__(self, sampler: FastSampler, cache: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.sampler = sampler
        self.cache = cache

    def prefill(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.sampler._forward(tokens, 0, self.cache)

    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        raise NotImplementedError


class _DynamicStep(_Stepper):
    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        return self.sampler._forward(token, position, self.cache)


class _StaticStep(_Stepper):
    def __init__(self, sampler: FastSampler, cache: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device):
        super().__init__(sampler, cache)
        self.position = torch.zeros(1, dtype=torch.long, device=device)

    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        self.position.fill_(position)
        return self.sampler._static_step(token, self.position, self.cache)


class _GraphStep(_Stepper):
    """The static step recorded in a CUDA graph for one request, over its own cache; `step` copies the
    token and position into the graph's input buffers and replays it. The logits it returns are
    overwritten by the next step."""

    def __init__(self, sampler: FastSampler, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(sampler, sampler._new_cache(batch, device, dtype, zeros=True))
        self.device = device
        self.token = torch.full((batch, 1), sampler.sos, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.logits = torch.empty(0)
        self.replay = self._record()
        self._check()

    def _run(self) -> None:
        self.logits = self.sampler._static_step(self.token, self.position, self.cache)

    def _record(self) -> Callable[[], None]:
        side_stream = torch.cuda.Stream(self.device)
        side_stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side_stream):  # warm-up outside the graph (library handles, workspaces)
            for _ in range(2):
                self._run()
        torch.cuda.current_stream(self.device).wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other requests may use CUDA meanwhile
            self._run()
        return graph.replay

    def _check(self) -> None:
        """Replays must give the eager step's logits at two positions (so the token and position
        buffers feed the graph), or the graph is not used."""
        tolerance = max(1e-3, 8 * torch.finfo(self.cache[0][0].dtype).eps)  # a wiring fault is far larger
        for position in (0, 1):
            self.position.fill_(position)
            expected = self.sampler._static_step(self.token, self.position, self.cache).float()
            self.replay()
            same_shape = self.logits.shape == expected.shape
            if not same_shape or not torch.allclose(self.logits.float(), expected, rtol=tolerance, atol=tolerance):
                raise RuntimeError(f"the replayed graph's logits differ from the eager step's at position {position}")

    def step(self, token: torch.Tensor, position: int) -> torch.Tensor:
        self.token.copy_(token)
        self.position.fill_(position)
        self.replay()
        return self.logits


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


_samplers: weakref.WeakKeyDictionary[LoadedModel, FastSampler] = weakref.WeakKeyDictionary()
_samplers_lock = threading.Lock()


def sampler_for(loaded: LoadedModel) -> FastSampler:
    """One sampler per loaded model, dropped with it when the model cache lets the model go."""
    with _samplers_lock:
        sampler = _samplers.get(loaded)
        if sampler is None:
            sampler = _samplers[loaded] = FastSampler(loaded.model)
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
    return last(sample_stream(model_key, options, cache=cache))


def complete(
    image: Image.Image, model_key: str, kept_rows: int, options: SamplingOptions, *, cache: ModelCache | None = None
) -> Samples:
    return last(complete_stream(image, model_key, kept_rows, options, cache=cache))
