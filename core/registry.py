"""Every checkpoint the playground can run, listed once.

Nothing else in the project names a hub id. Each entry is data: key, task, hub id, classes, and a
reference to the builder of a tiny, randomly initialised model of the same classes in core/tiny/
(tiny mode, tests, CI). Importing this module is cheap: transformers is imported only by the builders.
"""

from __future__ import annotations

from core.errors import InputError
from core.model_spec import LABELS_DIR, ModelSpec, Tiny, TinyBuilder, imagenet_labels, label_list, tiny

__all__ = [
    "LABELS_DIR",
    "REGISTRY",
    "ModelSpec",
    "Tiny",
    "TinyBuilder",
    "get_spec",
    "imagenet_labels",
    "label_list",
    "specs_for",
    "tiny",
]


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
        build_tiny=tiny("classify", "tiny_beit", num_classes),
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
        build_tiny=tiny("classify", "tiny_levit"),
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
        build_tiny=tiny("classify", "tiny_perceiver", d_model, kind == "learned"),
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
        build_tiny=tiny("text", "tiny_trocr"),
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
        build_tiny=tiny("segment", "tiny_mask2former", labels),
        description=description,
        params_millions=params,
        segment_modes=modes,
        stuff_label_ids=tuple(range(num_things, len(label_list(labels)))) if "panoptic" in modes else (),
    )


VG_VOCABULARY = "https://raw.githubusercontent.com/airsplay/py-bottom-up-attention/master/demo/data/genome/1600-400-20"
"""Where transformers' LXMERT and VisualBERT demos read the Visual Genome object and attribute names."""
VQA_ANSWERS = "https://dl.fbaipublicfiles.com/pythia/data/answers_vqa.txt"
"""The 3129 VQA v2 answers in the order of VisualBERT's outputs (the Pythia/MMF answer vocabulary), as
transformers' VisualBERT demo reads them."""

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
            build_tiny=tiny("segment", "tiny_beit_semantic", "ade20k-150"),
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
            build_tiny=tiny("text", "tiny_vit_gpt2"),
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
            build_tiny=tiny("flow", "tiny_perceiver_flow"),
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
                build_tiny=tiny("imagegpt", "tiny_imagegpt"),
                description=f"ImageGPT-{size}: a GPT-2-like transformer over 32x32 images in a 512-colour palette.",
                params_millions=params,
            )
            for size, params in (("small", 76.0), ("medium", 455.0), ("large", 1362.0))
        ),
        ModelSpec(
            key="multimodal-perceiver",
            task="video",
            hub_id="deepmind/multimodal-perceiver",
            name="Perceiver IO (multimodal autoencoding)",
            family="Perceiver",
            model_class="PerceiverForMultimodalAutoencoding",
            processor_class=None,
            build_tiny=tiny("video", "tiny_multimodal_perceiver"),
            description=(
                "Perceiver IO trained on Kinetics-700-2020 to autoencode 16 frames (224x224, 25 fps), their sound "
                "(30720 samples at 48 kHz) and the class label, through 784 latents."
            ),
            params_millions=19.9,
        ),
        ModelSpec(
            key="vip-llava-7b",
            task="chat",
            hub_id="llava-hf/vip-llava-7b-hf",
            name="ViP-LLaVA-7B",
            family="ViP-LLaVA",
            model_class="VipLlavaForConditionalGeneration",
            processor_class="AutoProcessor",
            build_tiny=tiny("chat", "tiny_vip_llava"),
            description=(
                "ViP-LLaVA-7B (CLIP-L/336 + Vicuna-7B), trained to read boxes, arrows and scribbles drawn on the image."
            ),
            params_millions=7063.0,
        ),
        ModelSpec(
            key="clip-italian",
            task="zero-shot",
            hub_id="clip-italian/clip-italian",
            name="CLIP Italian (ViT-B/32 + Italian BERT)",
            family="VisionTextDualEncoder",
            model_class="VisionTextDualEncoderModel",
            processor_class="VisionTextDualEncoderProcessor",
            build_tiny=tiny("zero_shot", "tiny_clip_italian"),
            description=(
                "OpenAI's CLIP ViT-B/32 image encoder and an Italian BERT (dbmdz xxl, uncased) text encoder, "
                "trained CLIP-style on 1.4M Italian image-caption pairs: it reads Italian."
            ),
            params_millions=198.9,
            text_max_tokens=96,
        ),
        ModelSpec(
            key="beit-base-224-pt22k",
            task="inside",
            hub_id="microsoft/beit-base-patch16-224-pt22k",
            name="BEiT-base (masked image modeling)",
            family="BEiT",
            model_class="BeitForMaskedImageModeling",
            processor_class="AutoImageProcessor",
            build_tiny=tiny("inside", "tiny_beit_mim"),
            description=(
                "BEiT-base/16 self-supervised on ImageNet-22k: predicts, for each masked patch, one of the "
                "8192 visual tokens of the DALL-E discrete VAE."
            ),
            params_millions=92.0,
        ),
        ModelSpec(
            key="frcnn-vg",
            task="detect",
            hub_id="unc-nlp/frcnn-vg-finetuned",
            name="Faster R-CNN (Visual Genome)",
            family="Faster R-CNN",
            model_class="VisualGenomeFasterRCNN",
            model_module="core.frcnn",
            processor_class=None,
            build_tiny=tiny("vqa", "tiny_frcnn"),
            description=(
                "ResNet-101 C4 Faster R-CNN trained on Visual Genome: 1600 objects and 400 attributes, and the "
                "2048-d region features VisualBERT reads."
            ),
            params_millions=65.4,
            label_files=(
                ("objects.txt", f"{VG_VOCABULARY}/objects_vocab.txt"),
                ("attributes.txt", f"{VG_VOCABULARY}/attributes_vocab.txt"),
            ),
        ),
        ModelSpec(
            key="visualbert-vqa",
            task="vqa",
            hub_id="uclanlp/visualbert-vqa",
            name="VisualBERT (VQA v2)",
            family="VisualBERT",
            model_class="VisualBertForQuestionAnswering",
            processor_class=None,
            tokenizer_class="BertTokenizer",
            tokenizer_hub_id="google-bert/bert-base-uncased",
            build_tiny=tiny("vqa", "tiny_visualbert_vqa"),
            description=(
                "VisualBERT fine-tuned on VQA v2: a question and the region features of the Visual Genome detector "
                "in, one of 3129 short answers out."
            ),
            params_millions=113.9,
            label_files=(("answers.txt", VQA_ANSWERS),),
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
