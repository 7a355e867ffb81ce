"""Tiny segmentation models of the real classes, with the real label sets and processors."""

from __future__ import annotations

from typing import Any

from core.tiny.common import BICUBIC, BILINEAR, IMAGENET_MEAN, IMAGENET_STD, beit_config, beit_processor, named_labels


def tiny_beit_semantic(labels: str) -> tuple[Any, Any]:
    config = beit_config(
        num_hidden_layers=4,
        image_size=640,
        use_auxiliary_head=False,
        auxiliary_channels=16,
        out_indices=[0, 1, 2, 3],
        pool_scales=[1, 2, 3, 6],
        **named_labels(labels),
    )
    return config, beit_processor(640, BICUBIC)


def swin_backbone(**sizes: Any) -> Any:
    """A Swin backbone of the given sizes that hands Mask2Former the feature maps of its four stages."""
    from transformers import SwinConfig

    return SwinConfig(out_features=["stage1", "stage2", "stage3", "stage4"], **sizes)


def tiny_mask2former(labels: str) -> tuple[Any, Any]:
    """Mask2Former Swin-S: the checkpoints' processors resize to a fixed 384 x 384 and pad to a multiple of 32."""
    from transformers import Mask2FormerConfig, Mask2FormerImageProcessorPil

    backbone = swin_backbone(image_size=384, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=6)
    config = Mask2FormerConfig(
        backbone_config=backbone,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=64,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        dim_feedforward=64,
        num_queries=20,
        **named_labels(labels),
    )
    processor = Mask2FormerImageProcessorPil(
        size={"height": 384, "width": 384},
        size_divisor=32,
        resample=BILINEAR,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        ignore_index=255,
        do_reduce_labels=False,
    )
    return config, processor
