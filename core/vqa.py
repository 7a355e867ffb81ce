"""Quick answers with VisualBERT: the Visual Genome Faster R-CNN finds up to 36 object regions in a
photo, VisualBERT reads the question with their 2048-d features and picks one of 3129 VQA answers.
This is transformers' VisualBERT demo pipeline: bert-base-uncased tokens (20 at most), the region
features as `visual_embeds`, a visual attention mask of ones, a softmax over the answers.

detect:  preprocess (core.frcnn) -> the detector -> regions in photo pixels, cached per photo
answer:  tokenise -> VisualBERT -> top-k answers

The detector's output is kept per photo (by content, the last REGION_CACHE_SIZE photos), so a second
question about the same photo runs VisualBERT only; the timings say so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from core import checks
from core.backend import runs_in
from core.errors import InputError, ModelUnavailableError
from core.lazy import torch
from core.models import LoadedModel, ModelCache, get_cache, ms
from core.progress import ProgressFn
from core.registry import get_spec
from core.settings import get_settings
from core.vqa_results import (
    ANSWERER,
    DETECTOR,
    Answer,
    DetectResult,
    PhotoRegions,
    Region,
    RegionCache,
    VqaResult,
    get_region_cache,
    photo_key,
)

DETECT_TASK, VQA_TASK = "detect", "vqa"
MAX_TOP_K = 20
QUESTION_TOKENS = 20
"""Token positions of a question, [CLS] and [SEP] included, as transformers' VisualBERT demo pads and
truncates them (VQA questions are short; longer ones are cut, and the result says so)."""
_ENGLISH_WORDS = (
    "what which who whom whose where when why how is are was were do does did can could the a an of "
    "in on at to this that there these those it its color colour many much kind type he she they man "
    "woman person people wearing holding sitting standing made"
)
ENGLISH_WORDS = frozenset(_ENGLISH_WORDS.split())
"""Common words of English VQA questions: a question with none of them is probably in another language."""


# --- detect -----------------------------------------------------------------------------------------


def display_name(raw: str) -> str:
    """A Visual Genome name as the demos show it: the first of its comma-separated spellings, lower case."""
    return raw.split(",")[0].strip().lower()


def _names(loaded: LoadedModel, stem: str, count: int) -> tuple[str, ...]:
    names = loaded.labels.get(stem, ())
    if len(names) != count:
        raise ModelUnavailableError(
            f"The {stem} list of {loaded.spec.name} has {len(names)} names where the model has {count} outputs. "
            f"Delete it and run `python -m core.download --model {loaded.spec.key}` again."
        )
    return names


def detect_loaded(image: Image.Image, loaded: LoadedModel) -> PhotoRegions:
    """Run the loaded detector on an RGB photo: its regions in photo pixels and their features."""
    from core.frcnn import preprocess

    model = loaded.model
    config = model.config
    objects = _names(loaded, "objects", int(config.get_path("ROI_HEADS.NUM_CLASSES")))
    attributes = _names(loaded, "attributes", int(config.get_path("ROI_BOX_HEAD.NUM_ATTRS")))
    inputs = preprocess(image, config)
    found = model.detect(inputs.pixel_values, inputs.size)
    scale_y, scale_x = inputs.scale
    width, height = image.size
    regions = []
    for box, obj, score, attr, attr_score in zip(
        found.boxes.tolist(),
        found.object_ids.tolist(),
        found.object_scores.tolist(),
        found.attribute_ids.tolist(),
        found.attribute_scores.tolist(),
        strict=True,
    ):
        x0, y0, x1, y1 = box
        photo_box = (
            round(min(max(x0 * scale_x, 0.0), width), 1),
            round(min(max(y0 * scale_y, 0.0), height), 1),
            round(min(max(x1 * scale_x, 0.0), width), 1),
            round(min(max(y1 * scale_y, 0.0), height), 1),
        )
        regions.append(
            Region(
                photo_box,
                display_name(objects[obj]),
                display_name(attributes[attr]),
                round(score, 4),
                round(attr_score, 4),
                obj,
                attr,
            )
        )
    return PhotoRegions(
        regions=regions,
        features=found.features.float().cpu(),
        image_size=image.size,
        nms_threshold=found.nms_threshold,
        min_detections=model.min_detections,
        score_threshold=float(config.get_path("ROI_HEADS.SCORE_THRESH_TEST")),
        device=str(loaded.device),
    )


@runs_in("vqa", worker_owned=("region_cache",))
def detect(
    image: Image.Image, *, cache: ModelCache | None = None, region_cache: RegionCache | None = None
) -> DetectResult:
    """The regions of a photo: from the region cache when this photo was seen (the detector is then
    not needed), else from the detector."""
    get_spec(DETECTOR, DETECT_TASK)
    region_cache = region_cache if region_cache is not None else get_region_cache()
    key = (DETECTOR, photo_key(image))
    photo = region_cache.get(key)
    detect_ms = load_ms = None
    if photo is None:
        loaded, was_loaded = (cache or get_cache()).get(DETECTOR)
        load_ms = ms(loaded.load_seconds) if was_loaded else None
        start = time.perf_counter()
        photo = detect_loaded(image, loaded)
        detect_ms = ms(time.perf_counter() - start)
        region_cache.put(key, photo)
    return DetectResult(photo, detect_ms, load_ms, photo.device, region_notes(photo))


def region_notes(photo: PhotoRegions) -> list[str]:
    count = len(photo.regions)
    notes = []
    if count < photo.min_detections:
        notes.append(
            f"Only {count} region{'' if count == 1 else 's'} found (the detector usually keeps "
            f"{photo.min_detections} or more): the answer rests on little."
        )
    confident = sum(r.score >= photo.score_threshold for r in photo.regions)
    if count and not confident:
        notes.append(
            f"No region scores {photo.score_threshold:g} or more: the detector is not confident about any "
            "object here (lower the threshold to see what it found)."
        )
    return notes


# --- answer -----------------------------------------------------------------------------------------


def validate_question(question: Any) -> str:
    limit = get_settings().max_text_chars
    if not isinstance(question, str) or not question.strip():
        raise InputError("Type a question about the photo.")
    if len(question) > limit:
        raise InputError(f"The question is {len(question)} characters long; the limit is {limit}.")
    return question.strip()


def question_notes(question: str, tokenizer: Any, tokens: int) -> list[str]:
    notes = []
    if tokens > QUESTION_TOKENS:
        notes.append(
            f"The question is {tokens - 2} word pieces long; VisualBERT reads the first {QUESTION_TOKENS - 2} "
            "(as transformers' demo does): ask shorter questions."
        )
    words = {word.strip("?!.,;:'\"").lower() for word in question.split()}
    if not question.isascii() or not words & ENGLISH_WORDS:
        notes.append(
            "This question does not look like English. VisualBERT and its tokenizer (bert-base-uncased) know "
            "English only, so the answer is likely a guess."
        )
    return notes


def preprocess_question(tokenizer: Any, question: str) -> tuple[dict[str, torch.Tensor], int]:
    """The question's tokens as the demo makes them (padded and truncated to QUESTION_TOKENS), and how
    many tokens it has uncut."""
    inputs = tokenizer(
        [question],
        padding="max_length",
        max_length=QUESTION_TOKENS,
        truncation=True,
        return_token_type_ids=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    return dict(inputs), len(tokenizer(question)["input_ids"])


def forward(loaded: LoadedModel, inputs: dict[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """VisualBERT's answer logits (1, answers) for the tokens and the region features (regions, dim)."""
    visual = features[None].to(loaded.device, loaded.dtype)
    with torch.inference_mode():
        outputs = loaded.model(
            input_ids=inputs["input_ids"].to(loaded.device),
            attention_mask=inputs["attention_mask"].to(loaded.device),
            token_type_ids=inputs["token_type_ids"].to(loaded.device),
            visual_embeds=visual,
            visual_attention_mask=torch.ones(visual.shape[:-1], dtype=torch.long, device=loaded.device),
        )
    return outputs.logits


def postprocess(logits: torch.Tensor, answers: Sequence[str], top_k: int) -> list[Answer]:
    probabilities = logits[0].float().softmax(-1)
    scores, indices = probabilities.topk(min(top_k, probabilities.shape[-1]))
    return [Answer(answers[i], round(float(s), 6)) for s, i in zip(scores.tolist(), indices.tolist(), strict=True)]


def answer_loaded(
    loaded: LoadedModel, question: str, features: torch.Tensor, top_k: int
) -> tuple[list[Answer], int, list[str]]:
    """Top-k answers of the loaded VisualBERT, the question's token count, and notes about the question."""
    expected = loaded.model.config.visual_embedding_dim
    if features.shape[-1] != expected:
        raise ModelUnavailableError(
            f"The detector's region features have {features.shape[-1]} values, {loaded.spec.name} reads {expected}."
        )
    answers = _names(loaded, "answers", loaded.model.config.num_labels)
    inputs, tokens = preprocess_question(loaded.tokenizer, question)
    logits = forward(loaded, inputs, features)
    return postprocess(logits, answers, top_k), tokens, question_notes(question, loaded.tokenizer, tokens)


def validate_top_k(top_k: Any) -> int:
    return checks.whole(top_k, "Top-k", 1, MAX_TOP_K)


@runs_in("vqa", worker_owned=("region_cache",))
def ask(
    image: Image.Image,
    question: Any,
    top_k: Any = 5,
    *,
    cache: ModelCache | None = None,
    region_cache: RegionCache | None = None,
    progress: ProgressFn | None = None,
) -> VqaResult:
    """Answer a question about an RGB photo: its regions (cached per photo), then VisualBERT."""
    question = validate_question(question)
    top_k = validate_top_k(top_k)
    cache = cache or get_cache()
    if progress:
        progress(0.0, "Finding regions")
    detection = detect(image, cache=cache, region_cache=region_cache)
    if not detection.photo.regions:
        raise InputError("The detector found no region in this photo, and VisualBERT needs at least one.")
    if progress:
        progress(0.6, "Answering")
    get_spec(ANSWERER, VQA_TASK)
    loaded, was_loaded = cache.get(ANSWERER)
    start = time.perf_counter()
    answers, tokens, notes = answer_loaded(loaded, question, detection.photo.features, top_k)
    answer_ms = ms(time.perf_counter() - start)
    if progress:
        progress(1.0, "Done")
    load_ms = ms(loaded.load_seconds) if was_loaded else None
    return VqaResult(question, answers, detection, answer_ms, load_ms, tokens, notes)


# --- drawing ----------------------------------------------------------------------------------------

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40)]  # fmt: skip


def visible_regions(regions: Sequence[dict[str, Any]], score_threshold: float, count: int) -> list[dict[str, Any]]:
    """The regions (as the API returns them) scoring at least `score_threshold`, the best `count` of them."""
    kept = [r for r in regions if r["score"] >= score_threshold]
    return sorted(kept, key=lambda r: -r["score"])[:count]


def draw_regions(image: Image.Image, regions: Sequence[dict[str, Any]]) -> Image.Image:
    """The photo with each region's box and "attribute object score" label (numbered as listed)."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    side = max(canvas.size)
    width = max(2, round(side / 300))
    font = ImageFont.load_default(size=max(12, round(side / 45)))
    for number, region in enumerate(regions, start=1):
        colour = PALETTE[(number - 1) % len(PALETTE)]
        x0, y0, x1, y1 = region["box"]
        draw.rectangle((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), outline=colour, width=width)
        text = f"{number}. {region['attribute']} {region['object']} {region['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_y = y0 - (bottom - top) - 2 * width if y0 - (bottom - top) - 2 * width >= 0 else y0
        draw.rectangle((x0, label_y, x0 + right - left + 2 * width, label_y + bottom - top + 2 * width), fill=colour)
        draw.text((x0 + width - left, label_y + width - top), text, fill=(255, 255, 255), font=font)
    return canvas
