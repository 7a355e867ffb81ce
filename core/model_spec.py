"""What a registry entry is: the checkpoint's description (ModelSpec), the lazy reference to its tiny
builder (Tiny), and the label lists shipped in core/labels/. core/registry.py holds the entries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LABELS_DIR = Path(__file__).resolve().parent / "labels"

TinyBuilder = Callable[[], tuple[Any, ...]]
"""Returns (config, *preprocessors) of a tiny model (core/tiny/): the model is `model_class(config)`, and
each preprocessor (image processor, tokenizer, processor) is saved beside it with `save_pretrained`."""


@dataclass(frozen=True)
class ModelSpec:
    key: str
    task: str
    hub_id: str
    name: str
    family: str
    model_class: str
    processor_class: str | None
    """None when the checkpoint ships no preprocessor (the task module prepares the inputs)."""
    build_tiny: TinyBuilder = field(repr=False, compare=False)
    description: str = ""
    params_millions: float = 0.0
    heads: tuple[tuple[str, str], ...] = ()
    """Extra output heads shown beside the main logits, as (output attribute, display name)."""
    tokenizer_class: str | None = None
    """Loaded beside the processor when the model also needs a tokenizer (text decoders)."""
    segment_modes: tuple[str, ...] = ()
    """Segmentation modes the checkpoint was trained for: "semantic", "instance", "panoptic"."""
    stuff_label_ids: tuple[int, ...] = ()
    """Label ids of "stuff" classes (sky, road, ...) that panoptic mode may fuse into one segment each."""
    text_max_tokens: int | None = None
    """Longest text, in tokens with the special ones, that the text encoder was trained on (longer texts
    are cut to it); None: the tokenizer's and the model's own limit."""
    model_module: str | None = None
    """The module of this project that defines `model_class` when it is not a transformers class (it
    loads and saves like one: `from_pretrained(folder or hub id, dtype=...)`, `save_pretrained(folder)`)."""
    tokenizer_hub_id: str | None = None
    """The repository the tokenizer comes from when the checkpoint ships none (tiny mode saves it beside
    the tiny model)."""
    label_files: tuple[tuple[str, str], ...] = ()
    """Name lists the checkpoint's files lack, as (file name, published address): fetched by
    `python -m core.download` (core/label_files.py); tiny mode saves placeholders of the same length."""

    @property
    def slug(self) -> str:
        return self.key.replace("/", "--")


@functools.cache
def label_list(name: str) -> tuple[str, ...]:
    """A label set shipped in core/labels/ (e.g. "imagenet-1k", "ade20k-150"), in checkpoint order."""
    return tuple((LABELS_DIR / f"{name}.txt").read_text(encoding="utf-8").split("\n")[:-1])


def imagenet_labels(num_classes: int) -> tuple[str, ...]:
    """The ImageNet-1k (1000) or ImageNet-22k (21841) class names in checkpoint order."""
    files = {1000: "imagenet-1k", 21841: "imagenet-22k"}
    if num_classes not in files:
        raise ValueError(f"no ImageNet label list with {num_classes} classes")
    labels = label_list(files[num_classes])
    assert len(labels) == num_classes
    return labels


@dataclass(frozen=True)
class Tiny:
    """A reference to a tiny builder in core/tiny/<module>.py, imported only when a tiny model is built."""

    module: str
    function: str
    args: tuple[Any, ...] = ()

    def __call__(self) -> tuple[Any, ...]:
        import importlib

        return getattr(importlib.import_module(f"core.tiny.{self.module}"), self.function)(*self.args)


def tiny(module: str, function: str, *args: Any) -> Tiny:
    return Tiny(module, function, args)
