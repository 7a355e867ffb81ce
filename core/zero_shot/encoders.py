"""The dual encoder in steps: preprocess (the processor's image processor and tokenizer), forward
(`get_image_features`, `get_text_features`), normalised embeddings and their cosine similarities.

Embeddings are float32 on the CPU, (n, projection_dim), each of unit length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.images import ImageInputError
from core.lazy import torch
from core.models import LoadedModel, ms
from core.progress import ProgressFn
from core.zero_shot.photos import EmbeddingCache, Photo
from core.zero_shot.text import listed, short

IMAGE_BATCH = 16
"""Photos per forward pass of the image encoder."""


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
            where = f"Image {photos.index(photo) + 1} ({short(photo.name, 60)})"
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
            + listed(cut, 3)
            + " was read."
        )
    unknown = [name for name, flag in zip(names, texts.unknown, strict=True) if flag]
    if unknown:
        notes.append(
            f"Some {what}s have characters the text encoder does not know (read as "
            f"{loaded.processor.tokenizer.unk_token}): " + listed(unknown, 3) + ". It reads Italian."
        )
    return notes
