"""Pieces several tiny builders share: label sets as config arguments, ImageNet mean/std, BEiT's processor."""

from __future__ import annotations

from typing import Any

from core.registry import imagenet_labels, label_list

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HALF = [0.5, 0.5, 0.5]
BILINEAR, BICUBIC = 2, 3
"""PIL's resample numbers, as the checkpoints' processor files write them."""


def label_kwargs(labels: tuple[str, ...] | dict[int, str]) -> dict[str, Any]:
    """`id2label`/`label2id` config arguments for a label list (ids 0, 1, ...) or an id -> label map."""
    id2label = labels if isinstance(labels, dict) else dict(enumerate(labels))
    return {"id2label": id2label, "label2id": {label: i for i, label in id2label.items()}}


def named_labels(name: str) -> dict[str, Any]:
    """Config arguments for a label set shipped in core/labels/ ("ade20k-150", "coco-80", ...)."""
    return label_kwargs(label_list(name))


def imagenet_label_kwargs(num_classes: int) -> dict[str, Any]:
    return label_kwargs(imagenet_labels(num_classes))


def beit_config(**settings: Any) -> Any:
    """A tiny BEiT (32 wide, 2 heads, patches of 16, relative position bias per layer unless `settings` say
    otherwise, as the real ones) with `settings`."""
    from transformers import BeitConfig

    tiny = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 16}
    return BeitConfig(**tiny, **{"use_relative_position_bias": True, **settings})


def beit_processor(side: int, resample: int) -> Any:
    """BEiT's image processor as its conversion script saves it: a plain resize to side x side (no crop),
    mean = std = 0.5, labels not reduced."""
    from transformers import BeitImageProcessorPil

    return BeitImageProcessorPil(
        do_resize=True,
        size={"height": side, "width": side},
        resample=resample,
        do_center_crop=False,
        image_mean=HALF,
        image_std=HALF,
        do_reduce_labels=False,
    )
