"""Pieces several tiny builders share: label sets as config arguments, the tiny sizes, mean/std values, the
image processors of BEiT, ViT and CLIP."""

from __future__ import annotations

from typing import Any

from core.model_spec import imagenet_labels, label_list

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HALF = [0.5, 0.5, 0.5]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
BILINEAR, BICUBIC = 2, 3
"""PIL's resample numbers, as the checkpoints' processor files write them."""
TINY_LAYERS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
"""Config arguments of every tiny transformer stack (BERT, CLIP, ViT, Llama, VisualBERT): 2 layers of
width 32, 2 heads, an MLP of 64."""
TINY_PERCEIVER = {
    "num_latents": 16,
    "d_latents": 32,
    "num_blocks": 1,
    "num_self_attends_per_block": 1,
    "num_self_attention_heads": 2,
    "num_cross_attention_heads": 1,
}
"""Config arguments of the tiny Perceiver IO models (classifiers and flow): 16 latents of 32."""


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

    return BeitImageProcessorPil(**square_resize(side, resample), do_center_crop=False, do_reduce_labels=False)


def square_resize(side: int, resample: int) -> dict[str, Any]:
    """Image processor arguments of a plain resize to side x side with mean = std = 0.5 (BEiT's and ViT's)."""
    size = {"height": side, "width": side}
    return {"do_resize": True, "size": size, "resample": resample, "image_mean": HALF, "image_std": HALF}


def clip_image_processor(side: int) -> Any:
    """CLIP's image processor as CLIP-based checkpoints save it: the shorter side to `side` (bicubic), the
    centre side x side crop, CLIP's mean/std, RGB."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        do_resize=True,
        size={"shortest_edge": side},
        resample=BICUBIC,
        do_center_crop=True,
        crop_size={"height": side, "width": side},
        do_normalize=True,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        do_convert_rgb=True,
    )
