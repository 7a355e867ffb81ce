"""Zero-shot requests: labels for photos (softmax over the labels), captions ranked for a photo, and
photos ranked for a query (softmax over the photos), all with the model's own logit scale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from core import checks
from core.backend import runs_in
from core.errors import InputError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache, ms
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for
from core.zero_shot.encoders import ImageEmbeddings, TextEmbeddings, embed_photos, embed_texts, similarities, text_notes
from core.zero_shot.photos import EmbeddingCache, Photo, as_photo, get_embedding_cache
from core.zero_shot.results import BatchResult, LabelScore, Match, ModelInfo, SearchResult, Timings, ZeroShotResult
from core.zero_shot.text import DEFAULT_TEMPLATE, PLACEHOLDER, apply_template, check_query, check_template, parse_labels

TASK = "zero-shot"
DEFAULT_MODEL = "clip-italian"
MAX_IMAGES = 32


def zero_shot_models() -> list[ModelSpec]:
    return specs_for(TASK)


@dataclass
class _Encoded:
    """One request's photos and texts through the encoders, and the model that encoded them."""

    photos: list[Photo]
    loaded: LoadedModel
    load_ms: float | None
    images: ImageEmbeddings
    texts: TextEmbeddings

    @property
    def info(self) -> ModelInfo:
        return ModelInfo.of(self.loaded)

    @property
    def timings(self) -> Timings:
        return Timings.of(self.images, self.texts, self.load_ms)

    @property
    def cosines(self) -> torch.Tensor:
        """(photos, texts)."""
        return similarities(self.images.vectors, self.texts.vectors)


def _encode(
    photos: Sequence[Photo | Image.Image],
    texts: Sequence[str],
    model: str,
    cache: ModelCache | None,
    embeddings: EmbeddingCache | None,
    progress: ProgressFn | None,
    *,
    searching: bool,
) -> _Encoded:
    """Check the photos, load the model, embed the photos (cached ones from `embeddings`), then `texts`."""
    if not photos:
        raise InputError("Add at least one photo to search." if searching else "Add at least one photo.")
    if len(photos) > MAX_IMAGES:
        raise InputError(f"{'Search at' if searching else 'At'} most {MAX_IMAGES} photos at once, not {len(photos)}.")
    checked = [as_photo(photo, f"image {number}") for number, photo in enumerate(photos, start=1)]
    get_spec(model, TASK)
    loaded, was_loaded = (cache or get_cache()).get(model)
    load_ms = ms(loaded.load_seconds) if was_loaded else None
    images = embed_photos(loaded, checked, embeddings if embeddings is not None else get_embedding_cache(), progress)
    if progress:
        progress(0.9, "Encoding the query" if searching else "Encoding the labels")
    return _Encoded(checked, loaded, load_ms, images, embed_texts(loaded, texts))


def _label_scores(
    labels: Sequence[str], prompts: Sequence[str], cosines: torch.Tensor, scale: float
) -> list[LabelScore]:
    probabilities = (cosines * scale).softmax(dim=-1)
    scores = [
        LabelScore(label, prompt, float(p), float(c))
        for label, prompt, p, c in zip(labels, prompts, probabilities.tolist(), cosines.tolist(), strict=True)
    ]
    return sorted(scores, key=lambda score: -score.probability)


def classify_photos(
    photos: Sequence[Photo | Image.Image],
    labels: str | Sequence[str],
    template: str | None = DEFAULT_TEMPLATE,
    *,
    lines_only: bool = False,
    what: str = "label",
    model: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
    embeddings: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
) -> BatchResult:
    """Score `labels` (put into `template`) for each photo: one batch through the text encoder, the
    photos' embeddings from the cache or in batches through the image encoder."""
    template = check_template(template)
    names, notes = parse_labels(labels, lines_only=lines_only, what=what)
    prompts = apply_template(names, template)
    encoded = _encode(photos, prompts, model, cache, embeddings, progress, searching=False)
    notes += text_notes(encoded.loaded, names, encoded.texts, what)
    if len(names) == 1:
        notes.append(
            f"With one {what} its probability is always 100%: a softmax over a single {what} means nothing. "
            f"Look at its cosine similarity, or add more {what}s to compare."
        )
    info = encoded.info
    scores = [_label_scores(names, prompts, row, info.logit_scale) for row in encoded.cosines]
    if progress:
        progress(1.0, "Done")
    return BatchResult(scores, notes=notes, timings=encoded.timings, model=info)


@runs_in("zero-shot", worker_owned=("embeddings",))
def zero_shot(
    image: Photo | Image.Image,
    labels: str | Sequence[str],
    template: str | None = DEFAULT_TEMPLATE,
    *,
    model: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
    embeddings: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
) -> ZeroShotResult:
    """Your own labels for one photo: probabilities (softmax of the cosine similarities times the model's
    logit scale) and cosine similarities, most probable first."""
    template = check_template(template)
    batch = classify_photos(
        [image], labels, template, model=model, cache=cache, embeddings=embeddings, progress=progress
    )
    return ZeroShotResult(batch.scores[0], template, notes=batch.notes, timings=batch.timings, model=batch.model)


@runs_in("zero-shot", worker_owned=("embeddings",))
def rank_captions(
    image: Photo | Image.Image,
    captions: str | Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
    embeddings: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
) -> ZeroShotResult:
    """Captions (one per line, used as they are) ranked for one photo."""
    options = {"model": model, "cache": cache, "embeddings": embeddings, "progress": progress}
    batch = classify_photos([image], captions, PLACEHOLDER, lines_only=True, what="caption", **options)
    return ZeroShotResult(batch.scores[0], PLACEHOLDER, notes=batch.notes, timings=batch.timings, model=batch.model)


@runs_in("zero-shot", worker_owned=("embeddings",))
def search_images(
    photos: Sequence[Photo | Image.Image],
    query: str,
    top_k: int = 5,
    *,
    model: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
    embeddings: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
) -> SearchResult:
    """Photos ranked by the cosine similarity of their embedding to the query's; probability: the
    softmax over the photos with the model's logit scale (which photo the query describes)."""
    query = check_query(query)
    top_k = checks.whole(top_k, "Top-k", 1, MAX_IMAGES)
    encoded = _encode(photos, [query], model, cache, embeddings, progress, searching=True)
    info = encoded.info
    cosines = encoded.cosines[:, 0]
    probabilities = (cosines * info.logit_scale).softmax(dim=0)
    order = sorted(range(len(encoded.photos)), key=lambda i: -float(cosines[i]))[:top_k]
    matches = [
        Match(rank, index, encoded.photos[index].name, float(cosines[index]), float(probabilities[index]))
        for rank, index in enumerate(order, start=1)
    ]
    notes = text_notes(encoded.loaded, [query], encoded.texts, "query")
    if len(encoded.photos) == 1:
        notes.append("With one photo its probability is always 100%: add more photos to compare.")
    if progress:
        progress(1.0, "Done")
    return SearchResult(query, matches, len(encoded.photos), notes=notes, timings=encoded.timings, model=info)
