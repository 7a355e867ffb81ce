"""Every checkpoint the playground can run, listed once.

Nothing else in the project names a hub id. Each entry also knows how to build a tiny, randomly
initialised model and processor of the same classes (tiny mode, tests, CI). Importing this module
is cheap: transformers is imported only inside the tiny builders.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError

LABELS_DIR = Path(__file__).resolve().parent / "labels"

TinyBuilder = Callable[[], tuple[Any, ...]]
"""Returns (config, *preprocessors) of a tiny model: the model is `model_class(config)`, and each
preprocessor (image processor, tokenizer, processor) is saved beside it with `save_pretrained`."""


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


def label_kwargs(labels: tuple[str, ...]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}


def lazy_builder(module: str, function: str, *args: Any) -> TinyBuilder:
    """A tiny builder that lives in another module, imported only when a tiny model is built."""

    def build() -> tuple[Any, ...]:
        import importlib

        return getattr(importlib.import_module(module), function)(*args)

    return build


def _label_kwargs(num_classes: int) -> dict[str, Any]:
    return label_kwargs(imagenet_labels(num_classes))


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _tiny_beit(num_classes: int) -> TinyBuilder:
    def build() -> tuple[Any, Any]:
        from transformers import BeitConfig, BeitImageProcessorPil

        config = BeitConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=224,
            patch_size=16,
            use_relative_position_bias=True,
            use_mean_pooling=True,
            layer_scale_init_value=0.1,
            **_label_kwargs(num_classes),
        )
        processor = BeitImageProcessorPil(
            do_resize=True,
            size={"height": 224, "width": 224},
            resample=2,
            do_center_crop=False,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        return config, processor

    return build


def _tiny_levit() -> tuple[Any, Any]:
    from transformers import LevitConfig, LevitImageProcessorPil

    config = LevitConfig(
        image_size=224,
        hidden_sizes=[16, 32, 48],
        num_attention_heads=[1, 2, 3],
        depths=[1, 1, 1],
        key_dim=[8, 8, 8],
        **_label_kwargs(1000),
    )
    processor = LevitImageProcessorPil(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return config, processor


def _tiny_perceiver(d_model: int) -> TinyBuilder:
    def build() -> tuple[Any, Any]:
        from transformers import PerceiverConfig, PerceiverImageProcessorPil

        config = PerceiverConfig(
            num_latents=16,
            d_latents=32,
            d_model=d_model,
            num_blocks=1,
            num_self_attends_per_block=1,
            num_self_attention_heads=2,
            num_cross_attention_heads=1,
            image_size=224,
            **_label_kwargs(1000),
        )
        processor = PerceiverImageProcessorPil(
            crop_size={"height": 256, "width": 256},
            size={"height": 224, "width": 224},
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        )
        return config, processor

    return build


_LEVIT_HEADS = (("cls_logits", "class head"), ("distillation_logits", "distillation head"))
_LEVIT_DESCRIPTION = (
    "LeViT (ImageNet-1k, 224 px) with its distillation head: the prediction is the mean of the "
    "class head and the distillation head."
)


def _beit(key: str, hub_id: str, dataset: str, num_classes: int, params: float, description: str) -> ModelSpec:
    return ModelSpec(
        key=key,
        task="classify",
        hub_id=hub_id,
        name=f"BEiT-base ({dataset})",
        family="BEiT",
        model_class="BeitForImageClassification",
        processor_class="AutoImageProcessor",
        build_tiny=_tiny_beit(num_classes),
        description=description,
        params_millions=params,
    )


def _levit(size: str, params: float) -> ModelSpec:
    return ModelSpec(
        key=f"levit-{size}",
        task="classify",
        hub_id=f"facebook/levit-{size}",
        name=f"LeViT-{size}",
        family="LeViT",
        model_class="LevitForImageClassificationWithTeacher",
        processor_class="AutoImageProcessor",
        build_tiny=_tiny_levit,
        description=_LEVIT_DESCRIPTION,
        params_millions=params,
        heads=_LEVIT_HEADS,
    )


def _perceiver(kind: str, model_class: str, d_model: int, params: float, description: str) -> ModelSpec:
    return ModelSpec(
        key=f"perceiver-{kind}",
        task="classify",
        hub_id=f"deepmind/vision-perceiver-{kind}",
        name=f"Perceiver ({kind})",
        family="Perceiver",
        model_class=model_class,
        processor_class="AutoImageProcessor",
        build_tiny=_tiny_perceiver(d_model),
        description=description,
        params_millions=params,
    )


def _trocr(kind: str, what: str, dataset: str) -> ModelSpec:
    return ModelSpec(
        key=f"trocr-base-{kind}",
        task="caption",
        hub_id=f"microsoft/trocr-base-{kind}",
        name=f"TrOCR-base ({kind} line)",
        family="TrOCR",
        model_class="VisionEncoderDecoderModel",
        processor_class="TrOCRProcessor",
        build_tiny=lazy_builder("core.tiny_text", "tiny_trocr"),
        description=f"Reads one line of {what}: ViT encoder (384 px) and TrOCR decoder ({dataset}).",
        params_millions=333.9,
    )


def _mask2former(dataset: str, modes: tuple[str, ...], labels: str, params: float, description: str) -> ModelSpec:
    num_things = 80 if labels.startswith("coco") else 0
    return ModelSpec(
        key=f"mask2former-swin-small-{dataset}",
        task="segment",
        hub_id=f"facebook/mask2former-swin-small-{dataset}",
        name=f"Mask2Former Swin-S ({dataset.replace('-', ' ').replace('coco', 'COCO').replace('ade', 'ADE20K')})",
        family="Mask2Former",
        model_class="Mask2FormerForUniversalSegmentation",
        processor_class="AutoImageProcessor",
        build_tiny=lazy_builder("core.tiny_segment", "tiny_mask2former", labels, labels.startswith("ade")),
        description=description,
        params_millions=params,
        segment_modes=modes,
        stuff_label_ids=tuple(range(num_things, len(label_list(labels)))) if "panoptic" in modes else (),
    )


REGISTRY: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in [
        _beit(
            "beit-base-224",
            "microsoft/beit-base-patch16-224",
            "ImageNet-1k",
            1000,
            86.5,
            "BEiT-base/16, self-supervised on ImageNet-22k, fine-tuned on ImageNet-22k then ImageNet-1k.",
        ),
        _beit(
            "beit-base-224-22k",
            "microsoft/beit-base-patch16-224-pt22k-ft22k",
            "ImageNet-22k",
            21841,
            102.6,
            "BEiT-base/16, self-supervised and fine-tuned on ImageNet-22k: 21,841 classes.",
        ),
        _levit("128S", 7.8),
        _levit("128", 9.2),
        _levit("192", 11.0),
        _levit("256", 18.9),
        _levit("384", 39.1),
        _perceiver(
            "learned",
            "PerceiverForImageClassificationLearned",
            512,
            62.3,
            "Perceiver IO on raw pixels with learned position embeddings (no built-in image prior).",
        ),
        _perceiver(
            "fourier",
            "PerceiverForImageClassificationFourier",
            261,
            48.4,
            "Perceiver IO on raw pixels with fixed 2D Fourier position encodings.",
        ),
        _perceiver(
            "conv",
            "PerceiverForImageClassificationConvProcessing",
            322,
            48.8,
            "Perceiver IO after a small convolutional stem (2D conv + max pool).",
        ),
        ModelSpec(
            key="beit-base-ade-640",
            task="segment",
            hub_id="microsoft/beit-base-finetuned-ade-640-640",
            name="BEiT-base UperNet (ADE20K)",
            family="BEiT",
            model_class="BeitForSemanticSegmentation",
            processor_class="AutoImageProcessor",
            build_tiny=lazy_builder("core.tiny_segment", "tiny_beit_semantic", "ade20k-150"),
            description="BEiT-base/16 with a UperNet head, fine-tuned on ADE20K at 640x640: 150 classes.",
            params_millions=163.0,
            segment_modes=("semantic",),
        ),
        _mask2former(
            "coco-instance",
            ("instance",),
            "coco-80",
            68.8,
            "Mask2Former with a Swin-S backbone, trained on COCO instance segmentation: 80 object classes.",
        ),
        _mask2former(
            "coco-panoptic",
            ("panoptic", "instance", "semantic"),
            "coco-panoptic-133",
            68.9,
            "Mask2Former with a Swin-S backbone, trained on COCO panoptic: 80 things and 53 stuff classes.",
        ),
        _mask2former(
            "ade-semantic",
            ("semantic",),
            "ade20k-150",
            68.8,
            "Mask2Former with a Swin-S backbone, trained on ADE20K semantic segmentation: 150 classes.",
        ),
        ModelSpec(
            key="vit-gpt2",
            task="caption",
            hub_id="nlpconnect/vit-gpt2-image-captioning",
            name="ViT-GPT2 (image captions)",
            family="VisionEncoderDecoder",
            model_class="VisionEncoderDecoderModel",
            processor_class="AutoImageProcessor",
            tokenizer_class="AutoTokenizer",
            build_tiny=lazy_builder("core.tiny_text", "tiny_vit_gpt2"),
            description="ViT-base/16 encoder and GPT-2 decoder, fine-tuned on COCO captions (224 px).",
            params_millions=239.2,
        ),
        _trocr("handwritten", "handwritten English text", "IAM"),
        _trocr("printed", "printed text", "SROIE receipts"),
        ModelSpec(
            key="perceiver-flow",
            task="flow",
            hub_id="deepmind/optical-flow-perceiver",
            name="Perceiver IO",
            family="Perceiver",
            model_class="PerceiverForOpticalFlow",
            processor_class=None,
            build_tiny=lazy_builder("core.flow", "tiny_perceiver_flow"),
            description="Perceiver IO optical flow (AutoFlow), 368x496 tiles of 3x3 patches of both frames.",
            params_millions=41.1,
        ),
        *(
            ModelSpec(
                key=f"imagegpt-{size}",
                task="imagegpt",
                hub_id=f"openai/imagegpt-{size}",
                name=f"ImageGPT-{size}",
                family="ImageGPT",
                model_class="ImageGPTForCausalImageModeling",
                processor_class="AutoImageProcessor",
                build_tiny=lazy_builder("core.tiny_imagegpt", "tiny_imagegpt"),
                description=f"ImageGPT-{size}: a GPT-2-like transformer over 32x32 images in a 512-colour palette.",
                params_millions=params,
            )
            for size, params in (("small", 76.0), ("medium", 455.0), ("large", 1362.0))
        ),
        ModelSpec(
            key="vip-llava-7b",
            task="chat",
            hub_id="llava-hf/vip-llava-7b-hf",
            name="ViP-LLaVA-7B",
            family="ViP-LLaVA",
            model_class="VipLlavaForConditionalGeneration",
            processor_class="AutoProcessor",
            build_tiny=lazy_builder("core.tiny_chat", "tiny_vip_llava"),
            description=(
                "ViP-LLaVA-7B (CLIP-L/336 + Vicuna-7B), trained to read boxes, arrows and scribbles drawn on the image."
            ),
            params_millions=7063.0,
        ),
    ]
}


def get_spec(key: str, task: str | None = None) -> ModelSpec:
    """The registry entry for `key`; unknown keys (or a key of another task) are an InputError."""
    spec = REGISTRY.get(key) if isinstance(key, str) else None
    if spec is None or (task is not None and spec.task != task):
        known = ", ".join(s.key for s in specs_for(task)) if task else ", ".join(REGISTRY)
        raise InputError(f"Unknown model {str(key)[:60]!r}. Choose one of: {known}.")
    return spec


def specs_for(task: str) -> list[ModelSpec]:
    """Registry entries of one task, in registry order."""
    return [spec for spec in REGISTRY.values() if spec.task == task]
