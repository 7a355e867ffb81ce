"""Tiny BEiT with its masked-image-modeling head (Inside tab): the real geometry, mask token, shared
relative position bias and 8192-token vocabulary, a tiny network."""

from __future__ import annotations

from typing import Any

from core.tiny.common import BILINEAR, beit_config, beit_processor

DALLE_VOCABULARY = 8192


def tiny_beit_mim() -> tuple[Any, Any]:
    config = beit_config(
        num_hidden_layers=2,
        image_size=224,
        vocab_size=DALLE_VOCABULARY,
        use_mask_token=True,
        use_relative_position_bias=False,
        use_shared_relative_position_bias=True,
        use_absolute_position_embeddings=False,
        use_mean_pooling=True,
        layer_scale_init_value=0.1,
    )
    return config, beit_processor(224, BILINEAR)
