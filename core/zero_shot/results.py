"""What zero-shot requests return: plain dataclasses, and their JSON form for the API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.models import LoadedModel
from core.zero_shot.encoders import ImageEmbeddings, TextEmbeddings, logit_scale, text_limit


@dataclass(frozen=True)
class LabelScore:
    label: str
    prompt: str
    probability: float
    cosine: float


@dataclass
class ModelInfo:
    key: str
    name: str
    hub_id: str
    device: str
    logit_scale: float
    text_max_tokens: int

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelInfo:
        spec = loaded.spec
        return cls(spec.key, spec.name, spec.hub_id, str(loaded.device), logit_scale(loaded), text_limit(loaded))


@dataclass
class Timings:
    preprocess: float
    image_encoder: float
    text_encoder: float
    load: float | None
    images_computed: int
    images_cached: int

    @classmethod
    def of(cls, images: ImageEmbeddings, texts: TextEmbeddings, load: float | None) -> Timings:
        """Milliseconds of each step; `load` is None when the model was already loaded."""
        return cls(
            preprocess=round(images.preprocess_ms + texts.preprocess_ms, 2),
            image_encoder=images.encoder_ms,
            text_encoder=texts.encoder_ms,
            load=load,
            images_computed=images.computed,
            images_cached=images.cached,
        )


@dataclass(kw_only=True)
class Answer:
    """What every zero-shot request answers besides its result: notes for the user, timings, the model."""

    notes: list[str]
    timings: Timings
    model: ModelInfo

    def shared_dict(self) -> dict[str, Any]:
        timings = self.timings
        return {
            "logit_scale": self.model.logit_scale,
            "notes": self.notes,
            "timings_ms": {
                "preprocess": timings.preprocess,
                "image_encoder": timings.image_encoder,
                "text_encoder": timings.text_encoder,
                "load": timings.load,
            },
            "model": self.model.key,
            "model_name": self.model.name,
            "hub_id": self.model.hub_id,
            "device": self.model.device,
            "text_max_tokens": self.model.text_max_tokens,
        }


@dataclass
class ZeroShotResult(Answer):
    """Labels of one photo, most probable first."""

    scores: list[LabelScore]
    template: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": [asdict(score) for score in self.scores],
            "template": self.template,
            "image_embedding": "cached" if self.timings.images_cached else "computed",
            **self.shared_dict(),
        }


@dataclass
class Match:
    rank: int
    index: int
    name: str
    cosine: float
    probability: float


@dataclass
class SearchResult(Answer):
    """Photos ranked for a query, best first (the top_k of them)."""

    query: str
    matches: list[Match]
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "ranking": [asdict(match) for match in self.matches],
            "images": self.count,
            "embeddings": {"computed": self.timings.images_computed, "cached": self.timings.images_cached},
            **self.shared_dict(),
        }


@dataclass
class BatchResult(Answer):
    """Labels of each of several photos (in input order), each list most probable first."""

    scores: list[list[LabelScore]]
