"""A tiny Visual Genome Faster R-CNN and a tiny VisualBERT for VQA.

The detector keeps the real geometry (ResNet-101 block counts, anchors, strides, RoI pooling at 1/16
into 14 x 14, the dilated res5, 1600 objects and 400 attributes, test size, pixel means, NMS settings,
36 regions) and only narrows the channels; VisualBERT keeps the 3129 answers and reads the tiny
detector's region features. No PyPI package ships the Visual Genome names or the VQA answer list
(docs/checkpoints.md), so tiny mode saves placeholders of the real lengths, marked as such.
"""

from __future__ import annotations

import copy
from typing import Any

from core.label_files import LabelFiles
from core.tiny.common import TINY_LAYERS

FRCNN_CONFIG: dict[str, Any] = {
    "MODEL": {
        "DEVICE": "cpu",
        "MAX_POOL": True,
        "PIXEL_MEAN": [102.9801, 115.9465, 122.7717],
        "PIXEL_STD": [1.0, 1.0, 1.0],
        "LOAD_PROPOSALS": False,
    },
    "INPUT": {"FORMAT": "BGR", "MIN_SIZE_TEST": 800, "MAX_SIZE_TEST": 1333},
    "BACKBONE": {"FREEZE_AT": 2},
    "RESNETS": {
        "DEPTH": 101,
        "NORM": "BN",
        "NUM_GROUPS": 1,
        "WIDTH_PER_GROUP": 64,
        "STEM_OUT_CHANNELS": 64,
        "RES2_OUT_CHANNELS": 256,
        "STRIDE_IN_1X1": True,
        "RES5_DILATION": 1,
        "OUT_FEATURES": ["res4"],
    },
    "ANCHOR_GENERATOR": {"SIZES": [[64, 128, 256, 512]], "ASPECT_RATIOS": [[0.5, 1.0, 2.0]], "OFFSET": 0.0},
    "PROPOSAL_GENERATOR": {"HIDDEN_CHANNELS": 512, "MIN_SIZE": 0},
    "RPN": {
        "IN_FEATURES": ["res4"],
        "BBOX_REG_WEIGHTS": [1.0, 1.0, 1.0, 1.0],
        "NMS_THRESH": 0.7,
        "PRE_NMS_TOPK_TEST": 6000,
        "POST_NMS_TOPK_TEST": 300,
    },
    "ROI_HEADS": {"IN_FEATURES": ["res4"], "NUM_CLASSES": 1600, "NMS_THRESH_TEST": 0.6, "SCORE_THRESH_TEST": 0.2},
    "ROI_BOX_HEAD": {
        "ATTR": True,
        "NUM_ATTRS": 400,
        "BBOX_REG_WEIGHTS": [10.0, 10.0, 5.0, 5.0],
        "CLS_AGNOSTIC_BBOX_REG": False,
        "POOLER_RESOLUTION": 14,
        "POOLER_SAMPLING_RATIO": 0,
        "POOLER_TYPE": "ROIPool",
        "RES5HALVE": False,
    },
    "MIN_DETECTIONS": 10,
    "MAX_DETECTIONS": 36,
    "PAD_VALUE": 0.0,
    "SIZE_DIVISIBILITY": 0,
}
"""unc-nlp/frcnn-vg-finetuned's config.yaml as docs/checkpoints.md records it (its keys, as the demo's
code reads them; several values unconfirmed there). The loader reads keys in any case."""

TINY_WIDTHS = {"STEM_OUT_CHANNELS": 8, "RES2_OUT_CHANNELS": 16, "WIDTH_PER_GROUP": 4}
TINY_HIDDEN = 16
"""Channels of the tiny detector: res4 64, res5 and region features 128 (real 1024 and 2048)."""
VQA_ANSWERS = 3129


def placeholders(what: str, count: int) -> list[str]:
    return [f"placeholder {what} {index}" for index in range(count)]


def frcnn_config(**sections: dict[str, Any]) -> Any:
    """The real detector config with `sections` merged in (e.g. RESNETS={"RES2_OUT_CHANNELS": 16})."""
    from core.frcnn import FrcnnConfig

    data = copy.deepcopy(FRCNN_CONFIG)
    for name, values in sections.items():
        data[name].update(values)
    return FrcnnConfig(data)


def tiny_frcnn() -> tuple[Any, LabelFiles]:
    """(config, name lists) of a narrow VisualGenomeFasterRCNN with the real geometry."""
    config = frcnn_config(RESNETS=TINY_WIDTHS, PROPOSAL_GENERATOR={"HIDDEN_CHANNELS": TINY_HIDDEN})
    names = LabelFiles(
        {
            "objects.txt": placeholders("object", FRCNN_CONFIG["ROI_HEADS"]["NUM_CLASSES"]),
            "attributes.txt": placeholders("attribute", FRCNN_CONFIG["ROI_BOX_HEAD"]["NUM_ATTRS"]),
        }
    )
    return config, names


def tiny_visualbert_vqa() -> tuple[Any, Any, LabelFiles]:
    """(config, tokenizer, answer list) of a tiny VisualBertForQuestionAnswering that reads the tiny
    detector's region features. The config is uclanlp/visualbert-vqa's (VisualBertConfig defaults with
    visual_embedding_dim and num_labels set, no answer names), narrowed; the tokenizer a small
    lower-casing WordPiece like bert-base-uncased's."""
    from transformers import VisualBertConfig

    from core.tiny.text import tiny_bert_tokenizer

    tokenizer = tiny_bert_tokenizer()
    config = VisualBertConfig(
        vocab_size=len(tokenizer),
        **TINY_LAYERS,
        visual_embedding_dim=TINY_WIDTHS["RES2_OUT_CHANNELS"] * 8,
        num_labels=VQA_ANSWERS,
    )
    return config, tokenizer, LabelFiles({"answers.txt": placeholders("answer", VQA_ANSWERS)})
