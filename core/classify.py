"""Image classification with one or several registry models: preprocess -> forward -> postprocess,
the shape of transformers' image-classification pipeline, returning plain Python."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image

from core import checks
from core.backend import runs_in
from core.errors import InputError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import get_settings

TASK = "classify"
MAX_TOP_K = 20


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float


@dataclass
class ModelResult:
    key: str
    name: str
    hub_id: str
    predictions: list[Prediction]
    heads: dict[str, list[Prediction]] = field(default_factory=dict)
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    load_ms: float | None = None
    device: str = "cpu"


@dataclass
class ClassifyResult:
    results: list[ModelResult]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: model key -> [{label, score}], timings per model, heads, summary."""
        return {
            "predictions": {r.key: [asdict(p) for p in r.predictions] for r in self.results},
            "heads": {
                r.key: {head: [asdict(p) for p in preds] for head, preds in r.heads.items()}
                for r in self.results
                if r.heads
            },
            "timings_ms": {
                r.key: {"preprocess": r.preprocess_ms, "inference": r.inference_ms, "load": r.load_ms}
                for r in self.results
            },
            "models": {r.key: {"name": r.name, "hub_id": r.hub_id, "device": r.device} for r in self.results},
            "summary": self.summary,
        }


def classify_models() -> list[ModelSpec]:
    return specs_for(TASK)


def validate_request(model_keys: Sequence[str] | str | None, top_k: Any) -> tuple[list[ModelSpec], int]:
    """Check the models and top-k a request asks for; raise InputError with a readable message."""
    if isinstance(model_keys, str):
        model_keys = [model_keys]
    if not model_keys:
        raise InputError("Choose at least one model.")
    specs = [get_spec(key, TASK) for key in dict.fromkeys(model_keys)]
    limit = get_settings().max_models_per_request
    if len(specs) > limit:
        raise InputError(f"Choose at most {limit} models at once.")
    return specs, checks.whole(top_k, "Top-k", 1, MAX_TOP_K)


def output_labels(config: Any) -> list[str]:
    """The label of each output of a classifier, in order. A config's id2label normally has the keys
    0..n-1; BEiT's ImageNet-22k checkpoint keeps the keys of the 21,843-class list after deleting two of
    them (docs/checkpoints.md), so output i is the label of the i-th key."""
    id2label = config.id2label
    return [id2label[key] for key in sorted(id2label)]


def preprocess(
    loaded: LoadedModel, image: Image.Image, shared_inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, bool]:
    """The processor's pixel values for `image`, and whether they were reused: `shared_inputs` keeps
    them by the processor's settings, for the other models configured alike."""
    signature = loaded.processor.to_json_string()
    reused = signature in shared_inputs
    if not reused:
        shared_inputs[signature] = loaded.processor(images=image, return_tensors="pt")["pixel_values"]
    return shared_inputs[signature], reused


def forward(loaded: LoadedModel, pixel_values: torch.Tensor) -> Any:
    with torch.inference_mode():
        return loaded.model(pixel_values=pixel_values.to(loaded.device, loaded.dtype))


def postprocess(loaded: LoadedModel, outputs: Any, top_k: int) -> tuple[list[Prediction], dict[str, list[Prediction]]]:
    """Top-k (label, probability) of the main logits, and of each extra head (LeViT's class and
    distillation heads, whose mean is the main prediction)."""
    labels = output_labels(loaded.model.config)
    predictions = _top_predictions(outputs.logits[0], labels, top_k)
    heads = {name: _top_predictions(getattr(outputs, attr)[0], labels, top_k) for attr, name in loaded.spec.heads}
    return predictions, ({"mean of both heads": predictions, **heads} if heads else {})


def _top_predictions(logits: torch.Tensor, labels: Sequence[str], top_k: int) -> list[Prediction]:
    probabilities = logits.float().softmax(dim=-1)
    scores, indices = probabilities.topk(min(top_k, probabilities.shape[-1]))
    return [Prediction(labels[i], float(s)) for s, i in zip(scores.tolist(), indices.tolist(), strict=True)]


def classify_loaded(
    image: Image.Image, loaded: LoadedModel, top_k: int, shared_inputs: dict[str, torch.Tensor] | None = None
) -> ModelResult:
    """Classify one RGB image with one loaded model. Pixel values are reused from (and stored in)
    `shared_inputs` for models whose image processors are configured identically."""
    spec = loaded.spec
    shared_inputs = {} if shared_inputs is None else shared_inputs
    start = time.perf_counter()
    pixel_values, reused = preprocess(loaded, image, shared_inputs)
    preprocessed = time.perf_counter()
    outputs = forward(loaded, pixel_values)
    predictions, heads = postprocess(loaded, outputs, top_k)
    done = time.perf_counter()
    return ModelResult(
        key=spec.key,
        name=spec.name,
        hub_id=spec.hub_id,
        predictions=predictions,
        heads=heads,
        preprocess_ms=0.0 if reused else round((preprocessed - start) * 1000, 2),
        inference_ms=round((done - preprocessed) * 1000, 2),
        device=str(loaded.device),
    )


def _short(label: str) -> str:
    return label.split(",")[0].strip()


def agreement_summary(results: Sequence[ModelResult]) -> str:
    """One sentence on where the models agree or differ about the top label."""
    if not results:
        return ""
    if len(results) == 1:
        top = results[0].predictions[0]
        return f"{results[0].name} says '{_short(top.label)}' ({top.score:.1%})."
    groups: dict[str, list[str]] = {}
    for result in results:
        groups.setdefault(result.predictions[0].label, []).append(result.name)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    if len(ranked) == 1:
        return f"All {len(results)} models agree: '{_short(ranked[0][0])}'."
    parts = [
        f"{' and '.join(names)} {'say' if len(names) > 1 else 'says'} '{_short(label)}'" for label, names in ranked
    ]
    lead = "The models differ"
    if len(ranked[0][1]) > 1 and len(ranked[0][1]) > len(ranked[1][1]):
        lead = f"{len(ranked[0][1])} of {len(results)} models agree"
    shared = set.intersection(*({p.label for p in r.predictions} for r in results))
    shared_note = ""
    if shared:
        best = max(shared, key=lambda label: sum(p.score for r in results for p in r.predictions if p.label == label))
        shared_note = f" '{_short(best)}' is in every model's top {len(results[0].predictions)}."
    return f"{lead}: " + "; ".join(parts) + "." + shared_note


@runs_in("classify")
def classify(
    image: Image.Image,
    model_keys: Sequence[str] | str,
    top_k: int = 5,
    *,
    cache: ModelCache | None = None,
    progress: ProgressFn | None = None,
) -> ClassifyResult:
    """Classify an RGB image with each of `model_keys`, loading models on first use.

    Models whose image processors are configured identically share one preprocessing pass
    (their `preprocess_ms` is then 0).
    """
    specs, top_k = validate_request(model_keys, top_k)
    cache = cache or get_cache()
    shared_inputs: dict[str, torch.Tensor] = {}
    results = []
    for index, spec in enumerate(specs):
        if progress:
            progress(index / len(specs), f"Running {spec.name}")
        loaded, was_loaded = cache.get(spec.key)
        result = classify_loaded(image, loaded, top_k, shared_inputs)
        if was_loaded:
            result.load_ms = round(loaded.load_seconds * 1000, 1)
        results.append(result)
    if progress:
        progress(1.0, "Done")
    return ClassifyResult(results, agreement_summary(results))
