"""Zero-shot labels and search by text with a vision-text dual encoder (clip-italian).

transformers' zero-shot image classification pipeline does not take VisionTextDualEncoderModel, so this
module does what the model's forward does, in parts that can be reused: the processor's image
processor and tokenizer (preprocess), `get_image_features` and `get_text_features` (forward), then
normalised embeddings, cosine similarities and a softmax with the model's own logit scale
(`logit_scale.exp()`, as its forward) (postprocess). Results are plain Python.

Image embeddings are kept per photo, keyed by the photo's content (a hash of the uploaded file's bytes,
or of the pixels) and the model, in a cache of bounded size: a new question about the same photos only
runs the text encoder.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from core import checks
from core.backend import runs_in
from core.errors import InputError
from core.images import ImageInputError, load_image
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache, ms
from core.progress import ProgressFn
from core.registry import ModelSpec, get_spec, specs_for
from core.settings import get_settings

TASK = "zero-shot"
DEFAULT_MODEL = "clip-italian"
PLACEHOLDER = "{}"
DEFAULT_TEMPLATE = "una foto di {}"
""""a photo of {}": the form of clip-italian's own zero-shot templates."""
MAX_LABELS = 64
MAX_IMAGES = 32
MAX_TEMPLATE_CHARS = 200
IMAGE_BATCH = 16
"""Photos per forward pass of the image encoder."""
EMBEDDING_CACHE_BYTES = 32 * 2**20
"""Memory the image-embedding cache may hold (about 16,000 photos of 512 floats)."""


# --- photos and their embeddings -------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """One photo for the image encoder: a key naming its content, a name to show, and how to decode it
    (called only when its embedding is not cached)."""

    key: str
    name: str
    load: Callable[[], Image.Image] = field(repr=False, compare=False)


def photo_from_image(image: Image.Image, name: str = "image") -> Photo:
    """A decoded RGB image as a Photo, keyed by its pixels."""
    if not isinstance(image, Image.Image):
        raise ImageInputError("The input could not be read as an image.")
    digest = hashlib.sha256(f"{image.mode} {image.size}".encode())
    digest.update(image.tobytes())
    return Photo(f"pixels:{digest.hexdigest()[:32]}", name, lambda: image)


def photo_from_file(path: str | os.PathLike[str] | None, name: str | None = None) -> Photo:
    """An uploaded file as a Photo, keyed by its bytes: decoded (core.images) only if its embedding is
    not cached. A file that cannot be read gives load_image's message."""
    if path is None or path == "":
        load_image(None)  # raises the "no image was given" message
    if not isinstance(path, str | os.PathLike):
        raise ImageInputError("The input could not be read as an image.")
    try:
        data = Path(path).read_bytes()
    except OSError:
        load_image(path)  # raises the message for a missing, unreadable or folder path
        raise
    if not data:
        raise ImageInputError("The file is empty.")
    digest = hashlib.sha256(data).hexdigest()[:32]
    return Photo(f"file:{digest}", name or Path(path).name, lambda: load_image(data))


def as_photo(source: Photo | Image.Image | str | os.PathLike[str] | None, name: str = "image") -> Photo:
    if isinstance(source, Photo):
        return source
    if isinstance(source, Image.Image):
        return photo_from_image(source, name)
    return photo_from_file(source)


class EmbeddingCache:
    """Normalised image embeddings by (model, photo key), least recently used dropped beyond `max_bytes`."""

    def __init__(self, max_bytes: int = EMBEDDING_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._vectors: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> torch.Tensor | None:
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
            return vector

    def put(self, key: tuple[str, str], vector: torch.Tensor) -> None:
        size = vector.numel() * vector.element_size()
        with self._lock:
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return
            self._vectors[key] = vector
            self._bytes += size
            while self._bytes > self.max_bytes and self._vectors:
                _, dropped = self._vectors.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._vectors)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
            self._bytes = 0


_default_embeddings = EmbeddingCache()


def get_embedding_cache() -> EmbeddingCache:
    """The process-wide image-embedding cache."""
    return _default_embeddings


# --- user text -------------------------------------------------------------------------------------


def parse_labels(
    labels: str | Sequence[str] | None, *, lines_only: bool = False, what: str = "label"
) -> tuple[list[str], list[str]]:
    """The labels of a text box (one per line, or separated by commas when there is one line; `lines_only`:
    one per line), whitespace tidied, empty ones dropped, repeats (ignoring case) left out; and notes.
    InputError for none, too many or too much text."""
    limit = get_settings().max_text_chars
    if labels is None:
        labels = ""
    if isinstance(labels, str):
        if len(labels) > MAX_LABELS * limit:
            raise InputError(f"The {what}s are too long: {len(labels)} characters, at most {MAX_LABELS * limit}.")
        parts = labels.splitlines() if lines_only or "\n" in labels.strip() else labels.split(",")
    elif isinstance(labels, Sequence) and all(isinstance(item, str) for item in labels):
        parts = list(labels)
    else:
        raise InputError(f"Give the {what}s as text: one per line{'' if lines_only else ' or separated by commas'}.")
    tidy = [" ".join(part.split()) for part in parts]
    tidy = [part for part in tidy if part]
    example = "un gatto sul divano\nun cane in un prato" if lines_only else "un gatto, un cane, una tazza di caffè"
    if not tidy:
        raise InputError(
            f"Give at least one {what}, one per line{'' if lines_only else ' or separated by commas'}, "
            f"e.g. {example!r}."
        )
    if len(tidy) > MAX_LABELS:
        raise InputError(f"At most {MAX_LABELS} {what}s at once, not {len(tidy)}: keep the ones that matter.")
    notes = []
    kept: dict[str, str] = {}
    repeated = []
    for label in tidy:
        if label.casefold() in kept:
            repeated.append(label)
            continue
        kept[label.casefold()] = label
    if repeated:
        shown = ", ".join(repr(_short(label)) for label in repeated[:5]) + (" …" if len(repeated) > 5 else "")
        notes.append(f"Left out repeated {what}s (the same ignoring case): {shown}.")
    cut = [label for label in kept.values() if len(label) > limit]
    if cut:
        notes.append(f"{len(cut)} {what}(s) longer than {limit} characters were cut to that length.")
    return [label[:limit] for label in kept.values()], notes


def check_template(template: str | None) -> str:
    """A prompt template with "{}" where each label goes; empty means the labels as they are."""
    if template is None:
        return PLACEHOLDER
    if not isinstance(template, str):
        raise InputError("The template must be text with {} where each label goes, e.g. 'una foto di {}'.")
    tidy = " ".join(template.split())
    if not tidy:
        return PLACEHOLDER
    if len(tidy) > MAX_TEMPLATE_CHARS:
        raise InputError(f"The template is too long: {len(tidy)} characters, at most {MAX_TEMPLATE_CHARS}.")
    if PLACEHOLDER not in tidy:
        raise InputError(
            f"The template must contain {{}} where each label goes, e.g. 'una foto di {{}}' (a photo of {{}}); "
            f"{_short(tidy)!r} has none."
        )
    return tidy


def check_query(query: str | None) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InputError("Type what to look for, e.g. 'un gatto sul divano' (a cat on the sofa).")
    tidy = " ".join(query.split())
    limit = get_settings().max_text_chars
    if len(tidy) > limit:
        raise InputError(f"The query is too long: {len(tidy)} characters, at most {limit}.")
    return tidy


def apply_template(labels: Sequence[str], template: str) -> list[str]:
    return [template.replace(PLACEHOLDER, label) for label in labels]


def _short(text: str, length: int = 40) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


# --- preprocess -> forward -> postprocess ------------------------------------------------------------


def text_limit(loaded: LoadedModel) -> int:
    """Tokens the text encoder reads: the training length where the registry knows it, else the
    tokenizer's and the position embeddings' limit."""
    tokenizer = loaded.processor.tokenizer
    limits = [
        loaded.spec.text_max_tokens,
        tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None,
        getattr(loaded.model.config.text_config, "max_position_embeddings", None),
    ]
    return min(limit for limit in limits if limit)


@dataclass
class TextInputs:
    tensors: dict[str, torch.Tensor]
    truncated: list[bool]
    unknown: list[bool]
    """Whether a text has characters the vocabulary lacks (read as the unknown token)."""


def preprocess_texts(loaded: LoadedModel, texts: Sequence[str]) -> TextInputs:
    """The tokenizer's padded batch, cut to the text encoder's limit; which texts were cut."""
    tokenizer = loaded.processor.tokenizer
    limit = text_limit(loaded)
    probe = tokenizer(list(texts), truncation=True, max_length=limit + 1)["input_ids"]
    tensors = tokenizer(list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
    unknown_id = tokenizer.unk_token_id
    return TextInputs(
        dict(tensors),
        [len(ids) > limit for ids in probe],
        [unknown_id is not None and unknown_id in ids for ids in probe],
    )


def preprocess_images(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    return loaded.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]


def _normalised(features: Any) -> torch.Tensor:
    vectors = getattr(features, "pooler_output", features).float()
    return (vectors / vectors.norm(dim=-1, keepdim=True)).cpu()


def encode_images(loaded: LoadedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Normalised image embeddings (float32, CPU), (n, projection_dim)."""
    with torch.inference_mode():
        features = loaded.model.get_image_features(pixel_values=pixel_values.to(loaded.device, loaded.dtype))
    return _normalised(features)


def encode_texts(loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Normalised text embeddings (float32, CPU), (n, projection_dim)."""
    with torch.inference_mode():
        features = loaded.model.get_text_features(**{k: v.to(loaded.device) for k, v in tensors.items()})
    return _normalised(features)


def logit_scale(loaded: LoadedModel) -> float:
    """The factor the model's forward multiplies cosine similarities by: `logit_scale.exp()`."""
    return float(loaded.model.logit_scale.detach().float().exp())


def similarities(image_vectors: torch.Tensor, text_vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of normalised embeddings, (images, texts)."""
    return image_vectors @ text_vectors.T


@dataclass
class ImageEmbeddings:
    vectors: torch.Tensor
    computed: int
    cached: int
    preprocess_ms: float
    encoder_ms: float


def embed_photos(
    loaded: LoadedModel,
    photos: Sequence[Photo],
    embeddings: EmbeddingCache,
    progress: ProgressFn | None = None,
) -> ImageEmbeddings:
    """Normalised embeddings of `photos` in order: from the cache where present, the others decoded
    (every one before any encoder work, so a bad upload fails early), preprocessed and encoded in
    batches of IMAGE_BATCH, then cached. A photo repeated in one request is encoded once."""
    model_id = f"{loaded.model.name_or_path}|{loaded.dtype}"
    vectors: dict[str, torch.Tensor] = {}
    for photo in photos:
        found = embeddings.get((model_id, photo.key))
        if found is not None:
            vectors[photo.key] = found
    cached = sum(photo.key in vectors for photo in photos)
    missing = list({photo.key: photo for photo in photos if photo.key not in vectors}.values())
    start = time.perf_counter()
    pixel_values = []
    for number, photo in enumerate(missing, start=1):
        try:
            image = photo.load()
        except ImageInputError as error:
            if len(photos) == 1:
                raise
            where = f"Image {photos.index(photo) + 1} ({_short(photo.name, 60)})"
            raise ImageInputError(f"{where}: {error}") from None
        pixel_values.append(preprocess_images(loaded, [image]))
        if progress:
            progress(0.3 * number / len(missing), f"Preparing photo {number} of {len(missing)}")
    preprocessed = time.perf_counter()
    for first in range(0, len(missing), IMAGE_BATCH):
        batch = missing[first : first + IMAGE_BATCH]
        encoded = encode_images(loaded, torch.cat(pixel_values[first : first + IMAGE_BATCH]))
        for photo, vector in zip(batch, encoded, strict=True):
            vector = vector.clone()  # its own storage: a row view would keep the whole batch alive
            vectors[photo.key] = vector
            embeddings.put((model_id, photo.key), vector)
        if progress:
            done = first + len(batch)
            progress(0.3 + 0.6 * done / len(missing), f"Encoded {done} of {len(missing)} photos")
    encoded_at = time.perf_counter()
    return ImageEmbeddings(
        torch.stack([vectors[photo.key] for photo in photos]),
        computed=len(missing),
        cached=cached,
        preprocess_ms=ms(preprocessed - start),
        encoder_ms=ms(encoded_at - preprocessed),
    )


@dataclass
class TextEmbeddings:
    vectors: torch.Tensor
    truncated: list[bool]
    unknown: list[bool]
    preprocess_ms: float
    encoder_ms: float


def embed_texts(loaded: LoadedModel, texts: Sequence[str]) -> TextEmbeddings:
    start = time.perf_counter()
    inputs = preprocess_texts(loaded, texts)
    tokenized = time.perf_counter()
    vectors = encode_texts(loaded, inputs.tensors)
    return TextEmbeddings(
        vectors, inputs.truncated, inputs.unknown, ms(tokenized - start), ms(time.perf_counter() - tokenized)
    )


def text_notes(loaded: LoadedModel, names: Sequence[str], texts: TextEmbeddings, what: str) -> list[str]:
    notes = []
    cut = [name for name, flag in zip(names, texts.truncated, strict=True) if flag]
    if cut:
        notes.append(
            f"The text encoder reads at most {text_limit(loaded)} tokens: only the beginning of "
            + ", ".join(repr(_short(name)) for name in cut[:3])
            + (" …" if len(cut) > 3 else "")
            + " was read."
        )
    unknown = [name for name, flag in zip(names, texts.unknown, strict=True) if flag]
    if unknown:
        notes.append(
            f"Some {what}s have characters the text encoder does not know (read as "
            f"{loaded.processor.tokenizer.unk_token}): "
            + ", ".join(repr(_short(name)) for name in unknown[:3])
            + (" …" if len(unknown) > 3 else "")
            + ". It reads Italian."
        )
    return notes


# --- requests ----------------------------------------------------------------------------------------


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


@dataclass
class ZeroShotResult:
    """Labels of one photo, most probable first."""

    scores: list[LabelScore]
    template: str
    notes: list[str]
    timings: Timings
    model: ModelInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": [asdict(score) for score in self.scores],
            "template": self.template,
            "logit_scale": self.model.logit_scale,
            "notes": self.notes,
            "image_embedding": "cached" if self.timings.images_cached else "computed",
            "timings_ms": _timings_dict(self.timings),
            **_model_dict(self.model),
        }


@dataclass
class Match:
    rank: int
    index: int
    name: str
    cosine: float
    probability: float


@dataclass
class SearchResult:
    """Photos ranked for a query, best first (the top_k of them)."""

    query: str
    matches: list[Match]
    count: int
    notes: list[str]
    timings: Timings
    model: ModelInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "ranking": [asdict(match) for match in self.matches],
            "images": self.count,
            "logit_scale": self.model.logit_scale,
            "notes": self.notes,
            "embeddings": {"computed": self.timings.images_computed, "cached": self.timings.images_cached},
            "timings_ms": _timings_dict(self.timings),
            **_model_dict(self.model),
        }


@dataclass
class BatchResult:
    """Labels of each of several photos (in input order), each list most probable first."""

    scores: list[list[LabelScore]]
    notes: list[str]
    timings: Timings
    model: ModelInfo


def _timings_dict(timings: Timings) -> dict[str, Any]:
    return {
        "preprocess": timings.preprocess,
        "image_encoder": timings.image_encoder,
        "text_encoder": timings.text_encoder,
        "load": timings.load,
    }


def _model_dict(model: ModelInfo) -> dict[str, Any]:
    return {
        "model": model.key,
        "model_name": model.name,
        "hub_id": model.hub_id,
        "device": model.device,
        "text_max_tokens": model.text_max_tokens,
    }


def zero_shot_models() -> list[ModelSpec]:
    return specs_for(TASK)


def _load(model: str, cache: ModelCache | None) -> tuple[LoadedModel, float | None]:
    get_spec(model, TASK)
    loaded, was_loaded = (cache or get_cache()).get(model)
    return loaded, ms(loaded.load_seconds) if was_loaded else None


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
    model: str = DEFAULT_MODEL,
    cache: ModelCache | None = None,
    embeddings: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
    lines_only: bool = False,
    what: str = "label",
) -> BatchResult:
    """Score `labels` (put into `template`) for each photo: one batch through the text encoder, the
    photos' embeddings from the cache or in batches through the image encoder."""
    template = check_template(template)
    names, notes = parse_labels(labels, lines_only=lines_only, what=what)
    if not photos:
        raise InputError("Add at least one photo.")
    if len(photos) > MAX_IMAGES:
        raise InputError(f"At most {MAX_IMAGES} photos at once, not {len(photos)}.")
    photos = [as_photo(photo, f"image {number}") for number, photo in enumerate(photos, start=1)]
    loaded, load_ms = _load(model, cache)
    prompts = apply_template(names, template)
    image_embeddings = embed_photos(
        loaded, photos, embeddings if embeddings is not None else get_embedding_cache(), progress
    )
    if progress:
        progress(0.9, "Encoding the labels")
    texts = embed_texts(loaded, prompts)
    notes += text_notes(loaded, names, texts, what)
    if len(names) == 1:
        notes.append(
            f"With one {what} its probability is always 100%: a softmax over a single {what} means nothing. "
            f"Look at its cosine similarity, or add more {what}s to compare."
        )
    info = ModelInfo.of(loaded)
    cosines = similarities(image_embeddings.vectors, texts.vectors)
    scores = [_label_scores(names, prompts, row, info.logit_scale) for row in cosines]
    timings = Timings(
        preprocess=round(image_embeddings.preprocess_ms + texts.preprocess_ms, 2),
        image_encoder=image_embeddings.encoder_ms,
        text_encoder=texts.encoder_ms,
        load=load_ms,
        images_computed=image_embeddings.computed,
        images_cached=image_embeddings.cached,
    )
    if progress:
        progress(1.0, "Done")
    return BatchResult(scores, notes, timings, info)


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
    return ZeroShotResult(batch.scores[0], template, batch.notes, batch.timings, batch.model)


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
    batch = classify_photos(
        [image],
        captions,
        PLACEHOLDER,
        model=model,
        cache=cache,
        embeddings=embeddings,
        progress=progress,
        lines_only=True,
        what="caption",
    )
    return ZeroShotResult(batch.scores[0], PLACEHOLDER, batch.notes, batch.timings, batch.model)


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
    if not photos:
        raise InputError("Add at least one photo to search.")
    if len(photos) > MAX_IMAGES:
        raise InputError(f"Search at most {MAX_IMAGES} photos at once, not {len(photos)}.")
    photos = [as_photo(photo, f"image {number}") for number, photo in enumerate(photos, start=1)]
    loaded, load_ms = _load(model, cache)
    image_embeddings = embed_photos(
        loaded, photos, embeddings if embeddings is not None else get_embedding_cache(), progress
    )
    if progress:
        progress(0.9, "Encoding the query")
    texts = embed_texts(loaded, [query])
    info = ModelInfo.of(loaded)
    cosines = similarities(image_embeddings.vectors, texts.vectors)[:, 0]
    probabilities = (cosines * info.logit_scale).softmax(dim=0)
    order = sorted(range(len(photos)), key=lambda i: -float(cosines[i]))[:top_k]
    matches = [
        Match(rank, index, photos[index].name, float(cosines[index]), float(probabilities[index]))
        for rank, index in enumerate(order, start=1)
    ]
    notes = text_notes(loaded, [query], texts, "query")
    if len(photos) == 1:
        notes.append("With one photo its probability is always 100%: add more photos to compare.")
    timings = Timings(
        preprocess=round(image_embeddings.preprocess_ms + texts.preprocess_ms, 2),
        image_encoder=image_embeddings.encoder_ms,
        text_encoder=texts.encoder_ms,
        load=load_ms,
        images_computed=image_embeddings.computed,
        images_cached=image_embeddings.cached,
    )
    if progress:
        progress(1.0, "Done")
    return SearchResult(query, matches, len(photos), notes, timings, info)
