"""Image captioning and text-line reading with VisionEncoderDecoder models (ViT-GPT2, TrOCR).

preprocess (image processor) -> `model.generate` -> `tokenizer.batch_decode(skip_special_tokens=True)`,
returning plain Python. Transformers 5 has no image-to-text pipeline, so generate is called directly.

Decoding is greedy, beam search (an n-best list scored by `sequences_scores`: the sum of the log-
probabilities of the generated tokens, end token included, divided by their number ** length_penalty)
or sampling (temperature and top-p; top-k is switched off so that only top-p filters). Every setting
that changes the output is passed to `generate` (core.generation), so settings a checkpoint stores
(TrOCR's beam search, n-gram blocking) never apply unseen; each result carries the effective settings.
Seeded sampling generates under `core.streaming.SEED_LOCK`; streaming uses `core.streaming.GenerationStream`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from PIL import Image

from core import checks
from core.backend import runs_in
from core.errors import InputError
from core.generation import effective_settings, explicit
from core.lazy import torch
from core.models import LoadedModel, ModelCache, load_for, ms
from core.registry import ModelSpec, get_spec, specs_for
from core.streaming import SEED_LOCK, GenerationStream

TASK = "caption"
MODES = ("greedy", "beam", "sampling")
MAX_NEW_TOKENS = 64
MAX_BEAMS = 8
MAX_LENGTH_PENALTY = 3.0
MAX_BATCH_IMAGES = 16


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
    length_penalty: float = 1.0

    def generate_kwargs(self, batch: bool = False) -> dict[str, Any]:
        """Keyword arguments for `model.generate` (a batch keeps only the best beam per image)."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "return_dict_in_generate": True}
        if self.mode == "beam":
            n_best = 1 if batch else self.n_best
            return explicit(
                **kwargs,
                do_sample=False,
                num_beams=self.num_beams,
                num_return_sequences=n_best,
                length_penalty=self.length_penalty,
                output_scores=True,
            )
        if self.mode == "sampling":
            return explicit(
                **kwargs, do_sample=True, num_beams=1, temperature=self.temperature, top_p=self.top_p, top_k=0
            )
        return explicit(**kwargs, do_sample=False, num_beams=1)


@dataclass(frozen=True)
class Candidate:
    text: str
    score: float | None = None
    """Beam search only (`sequences_scores`): the sum of the generated tokens' log-probabilities (end token
    included) divided by their number ** length_penalty; with length penalty 1, the mean log-probability."""


@dataclass
class _Captioned:
    """What every caption result says besides its captions: model, decoding, timings, device."""

    key: str
    name: str
    hub_id: str
    mode: str
    preprocess_ms: float = 0.0
    generate_ms: float = 0.0
    load_ms: float | None = None
    device: str = "cpu"
    generation: dict[str, Any] = field(default_factory=dict)
    """The settings `generate` ran with (core.generation.REPORTED)."""

    def _fields(self) -> dict[str, Any]:
        return {
            "model": self.key,
            "model_name": self.name,
            "hub_id": self.hub_id,
            "mode": self.mode,
            "timings_ms": {"preprocess": self.preprocess_ms, "generate": self.generate_ms, "load": self.load_ms},
            "device": self.device,
            "generation": self.generation,
        }


@dataclass(kw_only=True)
class CaptionResult(_Captioned):
    candidates: list[Candidate]
    """One caption (greedy, sampling) or the n-best list, best first (beam)."""
    done: bool = True
    """False for the partial results of a stream."""

    @property
    def caption(self) -> str:
        return self.candidates[0].text if self.candidates else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: caption, candidates [{text, score}], model, mode, timings, device, generation, done."""
        captions = {"caption": self.caption, "candidates": [asdict(c) for c in self.candidates]}
        return {**captions, **self._fields(), "done": self.done}


@dataclass(kw_only=True)
class BatchCaptionResult(_Captioned):
    captions: list[Candidate]
    """One caption per image, in input order."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: captions [{text, score}] in input order, model, mode, timings, device, generation."""
        return {"captions": [asdict(c) for c in self.captions], **self._fields()}


def caption_models() -> list[ModelSpec]:
    return specs_for(TASK)


def reads_one_line(key: str) -> bool:
    """Whether a model reads a single line of text (TrOCR) rather than describing a scene."""
    return get_spec(key, TASK).family == "TrOCR"


def validate_decoding(
    mode: Any = "greedy",
    max_new_tokens: Any = 20,
    num_beams: Any = 4,
    n_best: Any = 3,
    temperature: Any = 1.0,
    top_p: Any = 0.9,
    seed: Any = 0,
    length_penalty: Any = 1.0,
) -> Decoding:
    """Check every decoding setting (also those another mode uses); raise InputError if one is unusable."""
    mode = checks.choice(mode, "decoding", MODES)
    beams = checks.whole(num_beams, "Number of beams", 1, MAX_BEAMS)
    best = checks.whole(n_best, "Number of captions (n-best)", 1, MAX_BEAMS)
    if best > beams:
        raise InputError(f"Beam search with {beams} beams can return at most {beams} captions, not {best}.")
    return Decoding(
        mode=mode,
        max_new_tokens=checks.whole(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS),
        num_beams=beams,
        n_best=best,
        length_penalty=checks.number(length_penalty, "Length penalty", -MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY),
        temperature=checks.number(temperature, "Temperature", 0, 2.0, low_open=True),
        top_p=checks.number(top_p, "Top-p", 0, 1.0, low_open=True),
        seed=checks.seed(seed),
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


def _timed_candidates(
    loaded: LoadedModel, images: Sequence[Image.Image], decoding: Decoding, batch: bool
) -> tuple[list[Candidate], dict[str, Any]]:
    """Preprocess -> generate -> decode; the candidates and the result fields every caption result has."""
    start = time.perf_counter()
    pixels = pixel_values(loaded, images)
    preprocessed = time.perf_counter()
    kwargs = decoding.generate_kwargs(batch=batch)
    output = _generate(loaded, pixels, decoding, **kwargs)
    done = time.perf_counter()
    spec = loaded.spec
    fields = {
        "key": spec.key,
        "name": spec.name,
        "hub_id": spec.hub_id,
        "mode": decoding.mode,
        "preprocess_ms": ms(preprocessed - start),
        "generate_ms": ms(done - preprocessed),
        "device": str(loaded.device),
        "generation": effective_settings(loaded.model, kwargs),
    }
    return _candidates(loaded, output), fields


def caption_loaded(image: Image.Image, loaded: LoadedModel, decoding: Decoding) -> CaptionResult:
    """Caption one RGB image with a loaded model: one caption, or the n-best list for beam search."""
    candidates, fields = _timed_candidates(loaded, [image], decoding, batch=False)
    return CaptionResult(candidates=candidates, **fields)


@runs_in("caption")
def caption(
    image: Image.Image, model_key: str, decoding: Decoding | None = None, *, cache: ModelCache | None = None
) -> CaptionResult:
    """Caption an RGB image with a registry model, loading it on first use."""
    decoding = decoding or Decoding()
    loaded, load_ms = load_for(model_key, TASK, cache)
    result = caption_loaded(image, loaded, decoding)
    result.load_ms = load_ms
    return result


@runs_in("caption")
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
    loaded, load_ms = load_for(model_key, TASK, cache)
    captions, fields = _timed_candidates(loaded, images, decoding, batch=True)
    return BatchCaptionResult(captions=captions, load_ms=load_ms, **fields)


@runs_in("caption")
def stream_caption(
    image: Image.Image, model_key: str, decoding: Decoding | None = None, *, cache: ModelCache | None = None
) -> Iterator[CaptionResult]:
    """Caption one image word by word (greedy or sampling): partial results (`done=False`) as words
    arrive, then the final result, whose caption is exactly what `caption()` returns."""
    decoding = decoding or Decoding()
    if decoding.mode == "beam":
        raise InputError("Beam search cannot stream: the best beam is only known at the end.")
    loaded, load_ms = load_for(model_key, TASK, cache)
    spec = loaded.spec
    start = time.perf_counter()
    pixels = pixel_values(loaded, [image])
    preprocessed = time.perf_counter()
    settings = decoding.generate_kwargs()
    stream = GenerationStream(
        lambda **kwargs: _generate(loaded, pixels, decoding, **kwargs, **settings),
        tokenizer_of(loaded),
        name=f"caption-{spec.key}",
    )
    partial = CaptionResult(
        key=spec.key,
        name=spec.name,
        hub_id=spec.hub_id,
        mode=decoding.mode,
        candidates=[],
        preprocess_ms=ms(preprocessed - start),
        load_ms=load_ms,
        device=str(loaded.device),
        generation=effective_settings(loaded.model, settings),
        done=False,
    )
    with stream:
        text = ""
        for piece in stream:
            text += piece
            if piece.strip():
                elapsed = ms(time.perf_counter() - preprocessed)
                yield replace(partial, candidates=[Candidate(text.strip())], generate_ms=elapsed)
    yield replace(
        partial,
        candidates=_candidates(loaded, stream.output),
        generate_ms=ms(time.perf_counter() - preprocessed),
        done=True,
    )


def crop_band(image: Image.Image, top_percent: Any, bottom_percent: Any) -> Image.Image:
    """The horizontal band of an RGB image between two heights given in percent (0 = top edge,
    100 = bottom edge): a way to hand TrOCR a single line of a page."""
    top = checks.number(top_percent, "Top of the line (%)", 0, 100)
    bottom = checks.number(bottom_percent, "Bottom of the line (%)", 0, 100)
    if bottom <= top:
        raise InputError("The bottom of the line must be below its top.")
    upper = math.floor(image.height * top / 100)
    lower = max(upper + 1, math.ceil(image.height * bottom / 100))
    return image.crop((0, upper, image.width, min(lower, image.height)))
