"""ImageGPT's fast sampler: the model's own layers over a key/value cache allocated once for all
n_positions tokens, so a step costs one pass over the layers for one token per image, without the
per-step bookkeeping of `generate` (logits processors, growing caches, output objects). On CUDA one
step can be recorded in a CUDA graph and replayed per token.

Tokens are int64 (batch, positions) palette indices; logits are (batch, vocabulary).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.lazy import F, inference_mode, torch
from core.settings import get_settings
from core.streaming import last

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)
SIDE = 32
"""ImageGPT's images are SIDE x SIDE tokens; a stream reports once per row by default."""


@dataclass(frozen=True)
class SamplingOptions:
    num_images: int = 4
    temperature: float = 1.0
    top_k: int = 0
    """Keep only the k most likely colours at each step (0: no limit; 1: greedy)."""
    top_p: float = 1.0
    """Keep the smallest set of colours whose probabilities add up to top_p (1: no limit)."""
    seed: int = 0
    weights: str = "float32"
    """"float32" (exact; float16 on CUDA) or "int8" (on CPUs: int8 linear layers, faster, not exact)."""


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
