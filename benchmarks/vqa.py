"""Quick answers (VisualBERT) on one photo: the Visual Genome Faster R-CNN and VisualBERT at full size
(unc-nlp/frcnn-vg-finetuned's and uclanlp/visualbert-vqa's architectures, random weights), loaded
through the app's loader from a local folder.

Rows: the first question about a photo (detector + VisualBERT) against the same two models called
directly; a repeated question about the same photo (the region cache: VisualBERT only) against the
direct way, which runs the detector again for every question as transformers' demo does.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks.common import Row, device_label, measure_pair
from benchmarks.tasks import photo
from core import vqa as core_vqa
from core.frcnn import VisualGenomeFasterRCNN, preprocess
from core.label_files import LabelFiles
from core.models import LoadedModel, ModelCache, _spread_random_weights, load_model
from core.registry import ModelSpec, get_spec
from core.settings import get_settings
from core.tiny.text import tiny_bert_tokenizer
from core.tiny.vqa import FRCNN_CONFIG, VQA_ANSWERS, frcnn_config, placeholders

QUESTION = "What color is the cat?"


def save_full_size(folder: Path, labels: Path) -> None:
    """Both checkpoints at full size with random weights (the detector's settled as in tiny mode, so
    that its 300 proposals survive as with real weights), placeholder names beside them."""
    from transformers import VisualBertConfig, VisualBertForQuestionAnswering

    detector = VisualGenomeFasterRCNN(frcnn_config())
    _spread_random_weights(detector, seed=zlib.crc32(b"frcnn-vg"))
    detector.settle_random_weights()
    detector.save_pretrained(folder / "frcnn-vg")
    LabelFiles(
        {
            "objects.txt": placeholders("object", FRCNN_CONFIG["ROI_HEADS"]["NUM_CLASSES"]),
            "attributes.txt": placeholders("attribute", FRCNN_CONFIG["ROI_BOX_HEAD"]["NUM_ATTRS"]),
        }
    ).save_pretrained(_mkdir(labels / "frcnn-vg"))
    config = VisualBertConfig(visual_embedding_dim=2048, num_labels=VQA_ANSWERS)  # uclanlp/visualbert-vqa's
    answerer = VisualBertForQuestionAnswering(config)
    _spread_random_weights(answerer, seed=zlib.crc32(b"visualbert-vqa"))
    answerer.save_pretrained(folder / "visualbert-vqa")
    tiny_bert_tokenizer().save_pretrained(folder / "visualbert-vqa")  # a small vocabulary: ids stay valid
    LabelFiles({"answers.txt": placeholders("answer", VQA_ANSWERS)}).save_pretrained(_mkdir(labels / "visualbert-vqa"))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def loader(folder: Path, labels: Path) -> Callable[[ModelSpec], LoadedModel]:
    settings = dataclasses.replace(get_settings(), tiny=False, labels_dir=labels)

    def load(spec: ModelSpec) -> LoadedModel:
        local = dataclasses.replace(spec, hub_id=str(folder / spec.key), tokenizer_hub_id=None)
        return dataclasses.replace(load_model(local, settings), spec=spec)

    return load


def direct(detector: LoadedModel, answerer: LoadedModel, image: Image.Image) -> Any:
    """The two models called directly, as transformers' VisualBERT demo does for each question."""
    inputs = preprocess(image, detector.model.config)
    found = detector.model.detect(inputs.pixel_values, inputs.size)
    tokens = answerer.tokenizer([QUESTION], padding="max_length", max_length=20, truncation=True, return_tensors="pt")
    features = found.features[None].to(answerer.device, answerer.dtype)
    with torch.inference_mode():
        logits = answerer.model(
            input_ids=tokens.input_ids.to(answerer.device),
            attention_mask=tokens.attention_mask.to(answerer.device),
            token_type_ids=tokens.token_type_ids.to(answerer.device),
            visual_embeds=features,
            visual_attention_mask=torch.ones(features.shape[:-1], device=answerer.device),
        ).logits
    return logits.argmax(-1).item()


def run(device: torch.device, dtype: torch.dtype, repeat: int) -> list[Row]:
    image = photo()
    with tempfile.TemporaryDirectory(prefix="playground-bench-vqa-") as root:
        folder, labels = Path(root) / "models", Path(root) / "labels"
        save_full_size(folder, labels)
        cache = ModelCache(budget_bytes=2**62, loader=loader(folder, labels))
        detector, _ = cache.get("frcnn-vg")
        answerer, _ = cache.get("visualbert-vqa")
        label = device_label(detector.device, detector.dtype)
        params = f"{get_spec('frcnn-vg').params_millions:.0f}M + {get_spec('visualbert-vqa').params_millions:.0f}M"
        models = f"Faster R-CNN VG + VisualBERT-VQA ({params}, random weights)"
        load_note = f"loads from disk: detector {detector.load_seconds:.1f} s, VisualBERT {answerer.load_seconds:.1f} s"
        answers: dict[str, Any] = {}

        def first_question() -> None:
            result = core_vqa.ask(image, QUESTION, 5, cache=cache, region_cache=core_vqa.RegionCache())
            answers["ours"] = result

        def direct_way() -> None:
            answers["direct"] = direct(detector, answerer, image)

        ours_s, ref_s, ours_mb, ref_mb = measure_pair(first_question, direct_way, repeat, device, warmup=0)
        first = answers["ours"]
        same = first.answers[0].answer == f"placeholder answer {answers['direct']}"
        regions = len(first.detection.photo.regions)
        rows = [
            Row(
                "vqa, first question on a photo",
                models,
                label,
                f"1 image {image.width}x{image.height}, {regions} regions",
                ours_s,
                ref_s,
                "detector + VisualBERT called directly",
                ours_mb,
                ref_mb,
                f"same top answer: {same}; detector {first.detection.detect_ms / 1000:.1f} s of it; {load_note}",
                repeat,
            )
        ]
        warm = core_vqa.RegionCache()
        core_vqa.ask(image, QUESTION, 5, cache=cache, region_cache=warm)

        def repeated_question() -> None:
            answers["again"] = core_vqa.ask(image, "Is it sleeping?", 5, cache=cache, region_cache=warm)

        ours_s, ref_s, ours_mb, ref_mb = measure_pair(repeated_question, direct_way, repeat, device, warmup=0)
        assert answers["again"].detection.detect_ms is None
        rows.append(
            Row(
                "vqa, another question on the same photo",
                models,
                label,
                f"1 image {image.width}x{image.height}",
                ours_s,
                ref_s,
                "detector + VisualBERT again (the demo's way)",
                ours_mb,
                ref_mb,
                "ours reads the cached regions: VisualBERT only",
                repeat,
            )
        )
    return rows
