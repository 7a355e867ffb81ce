"""Tiny image classifiers: BEiT (ImageNet-1k and -22k), LeViT with its distillation head, Perceiver IO."""

from __future__ import annotations

from typing import Any

from core.model_spec import imagenet_labels
from core.tiny.common import (
    BICUBIC,
    BILINEAR,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TINY_PERCEIVER,
    beit_config,
    beit_processor,
    label_kwargs,
)

IMAGENET_22K_REMOVED = (9205, 15027)
"""BEiT's conversion script deletes these two of ImageNet-22k's 21843 label keys without renumbering
the others: the real config's id2label has 21841 keys from 0 to 21842 with these two missing."""


def imagenet_22k_id2label() -> dict[int, str]:
    """id2label as microsoft/beit-base-patch16-224-pt22k-ft22k stores it: output i is the i-th key."""
    keys = [key for key in range(21841 + len(IMAGENET_22K_REMOVED)) if key not in IMAGENET_22K_REMOVED]
    return dict(zip(keys, imagenet_labels(21841), strict=True))


def tiny_beit(num_classes: int) -> tuple[Any, Any]:
    labels = imagenet_22k_id2label() if num_classes == 21841 else imagenet_labels(num_classes)
    config = beit_config(
        num_hidden_layers=2, image_size=224, use_mean_pooling=True, layer_scale_init_value=0.1, **label_kwargs(labels)
    )
    return config, beit_processor(224, BILINEAR)


def tiny_levit() -> tuple[Any, Any]:
    from transformers import LevitConfig, LevitImageProcessorPil

    config = LevitConfig(
        image_size=224,
        hidden_sizes=[16, 32, 48],
        num_attention_heads=[1, 2, 3],
        depths=[1, 1, 1],
        key_dim=[8, 8, 8],
        **label_kwargs(imagenet_labels(1000)),
    )
    processor = LevitImageProcessorPil(
        size={"shortest_edge": 224},
        resample=BICUBIC,
        crop_size={"height": 224, "width": 224},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return config, processor


def tiny_perceiver(d_model: int, learned_positions: bool) -> tuple[Any, Any]:
    """Perceiver IO classifier; only the learned-positions model reads `image_size` (its position
    embeddings cover 224 x 224 pixels), the others keep the config default, as the real files do."""
    from transformers import PerceiverConfig, PerceiverImageProcessorPil

    config = PerceiverConfig(
        d_model=d_model,
        **TINY_PERCEIVER,
        **({"image_size": 224} if learned_positions else {}),
        **label_kwargs(imagenet_labels(1000)),
    )
    processor = PerceiverImageProcessorPil(
        crop_size={"height": 256, "width": 256},
        size={"height": 224, "width": 224},
        resample=BICUBIC,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return config, processor
