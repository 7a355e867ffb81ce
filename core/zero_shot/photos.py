"""Photos for the image encoder, keyed by content, and the cache of their embeddings.

A photo's key is a hash of the uploaded file's bytes, or of the decoded pixels; with the model's name
and dtype it keys a normalised image embedding (float32, CPU, (projection_dim,)) in a cache of bounded
size, so a new question about the same photos only runs the text encoder.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from core.images import ImageInputError, load_image
from core.lazy import torch

EMBEDDING_CACHE_BYTES = 32 * 2**20
"""Memory the image-embedding cache may hold (about 16,000 photos of 512 floats)."""


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
