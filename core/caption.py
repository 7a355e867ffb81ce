"""Image captioning and text-line reading with VisionEncoderDecoder models (ViT-GPT2, TrOCR).

preprocess (image processor) -> `model.generate` -> `tokenizer.batch_decode(skip_special_tokens=True)`,
returning plain Python. Transformers 5 has no image-to-text pipeline, so generate is called directly.

Decoding is greedy, beam search (an n-best list scored by `sequences_scores`: the sum of the token
log-probabilities divided by the generated length ** length_penalty) or sampling (temperature and
top-p; top-k is switched off so that only top-p filters). Seeded sampling
generates under `core.streaming.SEED_LOCK`; streaming uses `core.streaming.GenerationStream`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image

from core.errors import InputError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache
from core.registry import ModelSpec, get_spec, specs_for
from core.streaming import SEED_LOCK, GenerationStream

TASK = "caption"
MODES = ("greedy", "beam", "sampling")
MAX_NEW_TOKENS = 64
MAX_BEAMS = 8
MAX_BATCH_IMAGES = 16
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Decoding:
    """How to decode: `mode` is greedy, beam or sampling; the other fields apply to their mode."""

    mode: str = "greedy"
    max_new_tokens: int = 20
    num_beams: int = 4
    n_best: int = 3
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int = 0

    def generate_kwargs(self, batch: bool = False) -> dict[str, Any]:
        """Keyword arguments for `model.generate` (a batch keeps only the best beam per image)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "return_dict_in_generate": True}
        if self.mode == "beam":
            n_best = 1 if batch else self.n_best
            return {
                **kwargs,
                "do_sample": False,
                "num_beams": self.num_beams,
                "num_return_sequences": n_best,
                "output_scores": True,
            }
        if self.mode == "sampling":
            return {
                **kwargs,
                "do_sample": True,
                "num_beams": 1,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "top_k": 0,
            }
        return {**kwargs, "do_sample": False, "num_beams": 1}


@dataclass(frozen=True)
class Candidate:
    text: str
    score: float | None = None
    """Beam search only: the length-normalised log-probability (`sequences_scores`)."""


@dataclass
class CaptionResult:
    key: str
    name: str
    hub_id: str
    mode: str
    candidates: list[Candidate]
    """One caption (greedy, sampling) or the n-best list, best first (beam)."""
    preprocess_ms: float = 0.0
    generate_ms: float = 0.0
    load_ms: float | None = None
    device: str = "cpu"
    done: bool = True
    """False for the partial results of a stream."""

    @property
    def caption(self) -> str:
        return self.candidates[0].text if self.candidates else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: caption, candidates [{text, score}], model, mode, timings, device, done."""
        return {
            "caption": self.caption,
            "candidates": [asdict(c) for c in self.candidates],
            "model": self.key,
            "model_name": self.name,
            "hub_id": self.hub_id,
            "mode": self.mode,
            "timings_ms": {"preprocess": self.preprocess_ms, "generate": self.generate_ms, "load": self.load_ms},
            "device": self.device,
            "done": self.done,
        }


@dataclass
class BatchCaptionResult:
    key: str
    name: str
    hub_id: str
    mode: str
    captions: list[Candidate]
    """One caption per image, in input order."""
    preprocess_ms: float = 0.0
    generate_ms: float = 0.0
    load_ms: float | None = None
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: captions [{text, score}] in input order, model, mode, timings, device."""
        return {
            "captions": [asdict(c) for c in self.captions],
            "model": self.key,
            "model_name": self.name,
            "hub_id": self.hub_id,
            "mode": self.mode,
            "timings_ms": {"preprocess": self.preprocess_ms, "generate": self.generate_ms, "load": self.load_ms},
            "device": self.device,
        }


def caption_models() -> list[ModelSpec]:
    return specs_for(TASK)


def reads_one_line(key: str) -> bool:
    """Whether a model reads a single line of text (TrOCR) rather than describing a scene."""
    return get_spec(key, TASK).family == "TrOCR"


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or value != int(value)
    ):
        raise InputError(f"{what} must be a whole number from {low} to {high}.")
    if not low <= value <= high:
        raise InputError(f"{what} must be from {low} to {high}, not {int(value)}.")
    return int(value)


def _positive(value: Any, what: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{what} must be a number above 0 and at most {high:g}.")
    if not 0 < value <= high:
        raise InputError(f"{what} must be above 0 and at most {high:g}, not {value:g}.")
    return float(value)


def validate_decoding(
    mode: Any = "greedy",
    max_new_tokens: Any = 20,
    num_beams: Any = 4,
    n_best: Any = 3,
    temperature: Any = 1.0,
    top_p: Any = 0.9,
    seed: Any = 0,
) -> Decoding:
    """Check every decoding setting (also those another mode uses); raise InputError if one is unusable."""
    if mode not in MODES:
        raise InputError(f"Decoding must be one of {', '.join(MODES)}, not {str(mode)[:40]!r}.")
    beams = _whole(num_beams, "Number of beams", 1, MAX_BEAMS)
    best = _whole(n_best, "Number of captions (n-best)", 1, MAX_BEAMS)
    if best > beams:
        raise InputError(f"Beam search with {beams} beams can return at most {beams} captions, not {best}.")
    return Decoding(
        mode=mode,
        max_new_tokens=_whole(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS),
        num_beams=beams,
        n_best=best,
        temperature=_positive(temperature, "Temperature", 2.0),
        top_p=_positive(top_p, "Top-p", 1.0),
        seed=_whole(seed, "Seed", 0, MAX_SEED),
    )


def tokenizer_of(loaded: LoadedModel) -> Any:
    """The tokenizer of a caption model: its own (ViT-GPT2) or its processor's (TrOCR)."""
    return loaded.tokenizer if loaded.tokenizer is not None else loaded.processor.tokenizer


def pixel_values(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """The image processor's pixel values for RGB images, on the model's device and dtype."""
    values = loaded.processor(images=list(images), return_tensors="pt")["pixel_values"]
    return values.to(loaded.device, loaded.dtype)


def decode(loaded: LoadedModel, sequences: torch.Tensor) -> list[str]:
    """Token ids -> texts, special tokens dropped and surrounding spaces stripped (as the model cards do)."""
    return [text.strip() for text in tokenizer_of(loaded).batch_decode(sequences, skip_special_tokens=True)]


def _generate(loaded: LoadedModel, pixels: torch.Tensor, decoding: Decoding, **kwargs: Any) -> Any:
    with torch.inference_mode():
        if decoding.mode != "sampling":
            return loaded.model.generate(pixel_values=pixels, **kwargs)
        with SEED_LOCK:
            torch.manual_seed(decoding.seed)
            return loaded.model.generate(pixel_values=pixels, **kwargs)


def _candidates(loaded: LoadedModel, output: Any) -> list[Candidate]:
    texts = decode(loaded, output.sequences)
    scores = getattr(output, "sequences_scores", None)
    if scores is None:
        return [Candidate(text) for text in texts]
    return [Candidate(text, float(score)) for text, score in zip(texts, scores.float().tolist(), strict=True)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _load(key: str, cache: ModelCache | None) -> tuple[LoadedModel, float | None]:
    get_spec(key, TASK)
    loaded, was_loaded = (cache or get_cache()).get(key)
    return loaded, _ms(loaded.load_seconds) if was_loaded else None


def _timed_candidates(
    loaded: LoadedModel, images: Sequence[Image.Image], decoding: Decoding, batch: bool
) -> tuple[list[Candidate], dict[str, Any]]:
    """Preprocess -> generate -> decode; the candidates and the result fields every caption result has."""
    start = time.perf_counter()
    pixels = pixel_values(loaded, images)
    preprocessed = time.perf_counter()
    output = _generate(loaded, pixels, decoding, **decoding.generate_kwargs(batch=batch))
    done = time.perf_counter()
    spec = loaded.spec
    fields = {
        "key": spec.key,
        "name": spec.name,
        "hub_id": spec.hub_id,
        "mode": decoding.mode,
        "preprocess_ms": _ms(preprocessed - start),
        "generate_ms": _ms(done - preprocessed),
        "device": str(loaded.device),
    }
    return _candidates(loaded, output), fields


def caption_loaded(image: Image.Image, loaded: LoadedModel, decoding: Decoding) -> CaptionResult:
    """Caption one RGB image with a loaded model: one caption, or the n-best list for beam search."""
    candidates, fields = _timed_candidates(loaded, [image], decoding, batch=False)
    return CaptionResult(candidates=candidates, **fields)


def caption(
    image: Image.Image, model_key: str, decoding: Decoding | None = None, *, cache: ModelCache | None = None
) -> CaptionResult:
    """Caption an RGB image with a registry model, loading it on first use."""
    decoding = decoding or Decoding()
    loaded, load_ms = _load(model_key, cache)
    result = caption_loaded(image, loaded, decoding)
    result.load_ms = load_ms
    return result


def caption_batch(
    images: Sequence[Image.Image],
    model_key: str,
    decoding: Decoding | None = None,
    *,
    cache: ModelCache | None = None,
) -> BatchCaptionResult:
    """Caption several RGB images in one batched generate call; one caption per image, in order
    (beam search keeps the best beam of each image). Greedy captions equal those of one-by-one calls;
    sampled ones differ, since the images share one random stream."""
    decoding = decoding or Decoding()
    if not images:
        raise InputError("Add at least one image.")
    if len(images) > MAX_BATCH_IMAGES:
        raise InputError(f"Caption at most {MAX_BATCH_IMAGES} images at once, not {len(images)}.")
    loaded, load_ms = _load(model_key, cache)
    captions, fields = _timed_candidates(loaded, images, decoding, batch=True)
    return BatchCaptionResult(captions=captions, load_ms=load_ms, **fields)


def stream_caption(
    image: Image.Image, model_key: str, decoding: Decoding | None = None, *, cache: ModelCache | None = None
) -> Iterator[CaptionResult]:
    """Caption one image word by word (greedy or sampling): partial results (`done=False`) as words
    arrive, then the final result, whose caption is exactly what `caption()` returns."""
    decoding = decoding or Decoding()
    if decoding.mode == "beam":
        raise InputError("Beam search cannot stream: the best beam is only known at the end.")
    loaded, load_ms = _load(model_key, cache)
    spec = loaded.spec
    start = time.perf_counter()
    pixels = pixel_values(loaded, [image])
    preprocessed = time.perf_counter()
    stream = GenerationStream(
        lambda **kwargs: _generate(loaded, pixels, decoding, **kwargs, **decoding.generate_kwargs()),
        tokenizer_of(loaded),
        name=f"caption-{spec.key}",
    )
    partial = CaptionResult(
        key=spec.key,
        name=spec.name,
        hub_id=spec.hub_id,
        mode=decoding.mode,
        candidates=[],
        preprocess_ms=_ms(preprocessed - start),
        load_ms=load_ms,
        device=str(loaded.device),
        done=False,
    )
    with stream:
        text = ""
        for piece in stream:
            text += piece
            if piece.strip():
                elapsed = _ms(time.perf_counter() - preprocessed)
                yield replace(partial, candidates=[Candidate(text.strip())], generate_ms=elapsed)
    yield replace(
        partial,
        candidates=_candidates(loaded, stream.output),
        generate_ms=_ms(time.perf_counter() - preprocessed),
        done=True,
    )


def crop_band(image: Image.Image, top_percent: Any, bottom_percent: Any) -> Image.Image:
    """The horizontal band of an RGB image between two heights given in percent (0 = top edge,
    100 = bottom edge): a way to hand TrOCR a single line of a page."""
    top = _percent(top_percent, "Top of the line")
    bottom = _percent(bottom_percent, "Bottom of the line")
    if bottom <= top:
        raise InputError("The bottom of the line must be below its top.")
    upper = math.floor(image.height * top / 100)
    lower = max(upper + 1, math.ceil(image.height * bottom / 100))
    return image.crop((0, upper, image.width, min(lower, image.height)))


def _percent(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InputError(f"{what} must be a percentage from 0 to 100.")
    return float(value)
