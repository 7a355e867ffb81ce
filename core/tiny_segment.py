"""Tiny random segmentation models of the real classes, with the real label sets and processors."""

from __future__ import annotations

from typing import Any

from core.registry import IMAGENET_MEAN, IMAGENET_STD, label_kwargs, label_list


def tiny_beit_semantic(labels: str) -> tuple[Any, Any]:
    from transformers import BeitConfig, BeitImageProcessorPil

    config = BeitConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=640,
        patch_size=16,
        use_relative_position_bias=True,
        use_auxiliary_head=False,
        auxiliary_channels=16,
        out_indices=[0, 1, 2, 3],
        pool_scales=[1, 2, 3, 6],
        **label_kwargs(label_list(labels)),
    )
    processor = BeitImageProcessorPil(
        size={"height": 640, "width": 640},
        do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_reduce_labels=True,
    )
    return config, processor


def tiny_mask2former(labels: str, reduce_labels: bool) -> tuple[Any, Any]:
    from transformers import Mask2FormerConfig, Mask2FormerImageProcessorPil, SwinConfig

    backbone = SwinConfig(
        image_size=384,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=6,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
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
        **label_kwargs(label_list(labels)),
    )
    processor = Mask2FormerImageProcessorPil(
        size={"shortest_edge": 384, "longest_edge": 1333},
        size_divisor=32,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
        ignore_index=255,
        do_reduce_labels=reduce_labels,
    )
    return config, processor
