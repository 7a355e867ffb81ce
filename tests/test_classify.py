"""Tests for core.classify: parity with the transformers pipeline, LeViT heads, the JSON result,
request validation, the agreement summary, progress and shared preprocessing."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image

from core.classify import (
    MAX_TOP_K,
    ModelResult,
    Prediction,
    agreement_summary,
    classify,
    classify_models,
    output_labels,
    validate_request,
)
from core.errors import InputError
from core.images import load_image
from core.models import ModelCache, get_cache, reset_cache
from core.registry import REGISTRY, imagenet_labels, specs_for

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CLASSIFY_KEYS = [spec.key for spec in specs_for("classify")]
LEVIT_HEAD_NAMES = ["mean of both heads", "class head", "distillation head"]


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {name: load_image(ASSETS / f"{name}.jpg") for name in ("chelsea", "coffee")}


def labels(predictions: list[Prediction]) -> list[str]:
    return [p.label for p in predictions]


def softmax_top_k(logits: torch.Tensor, id2label: dict[int, str], k: int) -> list[tuple[str, float]]:
    scores, indices = logits.float().softmax(-1).topk(k)
    return [(id2label[int(i)], float(s)) for s, i in zip(scores, indices, strict=True)]


def test_classify_models_are_the_classify_registry_entries() -> None:
    assert [s.key for s in classify_models()] == CLASSIFY_KEYS
    for key in [
        "beit-base-224",
        "beit-base-224-22k",
        "levit-128S",
        "perceiver-learned",
        "perceiver-fourier",
        "perceiver-conv",
    ]:
        assert key in CLASSIFY_KEYS


# --- parity with transformers.pipeline ------------------------------------------------------------


@pytest.mark.parametrize("key", CLASSIFY_KEYS)
def test_parity_with_the_transformers_pipeline(key: str, images: dict[str, Image.Image]) -> None:
    loaded, _ = get_cache().get(key)
    model = loaded.model
    if sorted(model.config.id2label) != list(range(model.config.num_labels)):  # BEiT-22k: see the next test
        model = copy.deepcopy(model)
        model.config.id2label = dict(enumerate(output_labels(model.config)))
    pipe = transformers.pipeline("image-classification", model=model, image_processor=loaded.processor)
    for name, image in images.items():
        expected = pipe(image, top_k=5)
        result = classify(image, [key], top_k=5)
        ours = result.results[0].predictions
        assert len(ours) == len(expected) == 5
        assert [p.label for p in ours] == [e["label"] for e in expected], name
        for prediction, reference in zip(ours, expected, strict=True):
            assert prediction.score == pytest.approx(reference["score"], abs=1e-5), name
        assert all(a.score >= b.score for a, b in itertools.pairwise(ours))


def test_the_22k_labels_follow_the_checkpoints_keys_with_two_deleted(images: dict[str, Image.Image]) -> None:
    """BEiT-22k's id2label keeps the keys of 21,843 classes with 9205 and 15027 deleted (docs/checkpoints.md):
    transformers' pipeline fails on it; output i is the label of the i-th key."""
    loaded, _ = get_cache().get("beit-base-224-22k")
    config = loaded.model.config
    assert len(config.id2label) == config.num_labels == 21841
    assert 9205 not in config.id2label and 15027 not in config.id2label and max(config.id2label) == 21842
    labels = output_labels(config)
    assert labels == list(imagenet_labels(21841))
    assert labels[9205] == config.id2label[9206] and labels[21840] == config.id2label[21842]
    pipe = transformers.pipeline("image-classification", model=loaded.model, image_processor=loaded.processor)
    with pytest.raises(KeyError):
        pipe(images["chelsea"], top_k=21841)
    predictions = classify(images["chelsea"], ["beit-base-224-22k"], top_k=MAX_TOP_K).results[0].predictions
    assert {p.label for p in predictions} <= set(labels)


def test_different_images_give_different_predictions(images: dict[str, Image.Image]) -> None:
    cat = classify(images["chelsea"], ["beit-base-224"], top_k=5).results[0].predictions
    coffee = classify(images["coffee"], ["beit-base-224"], top_k=5).results[0].predictions
    assert [(p.label, p.score) for p in cat] != [(p.label, p.score) for p in coffee]


def test_top_k_sizes(images: dict[str, Image.Image]) -> None:
    one = classify(images["chelsea"], ["levit-128S"], top_k=1).results[0]
    many = classify(images["chelsea"], ["levit-128S"], top_k=MAX_TOP_K).results[0]
    assert len(one.predictions) == 1 and len(many.predictions) == MAX_TOP_K
    assert many.predictions[0] == one.predictions[0]
    assert all(len(preds) == MAX_TOP_K for preds in many.heads.values())


# --- LeViT heads ----------------------------------------------------------------------------------


def test_levit_heads(images: dict[str, Image.Image]) -> None:
    image = images["chelsea"]
    result = classify(image, ["levit-128S"], top_k=5).results[0]
    assert list(result.heads) == LEVIT_HEAD_NAMES
    assert result.heads["mean of both heads"] == result.predictions

    loaded, _ = get_cache().get("levit-128S")
    model = loaded.model
    pixel_values = loaded.processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        outputs = model(pixel_values=pixel_values)
    assert torch.allclose(outputs.logits, (outputs.cls_logits + outputs.distillation_logits) / 2, atol=1e-6)
    id2label = model.config.id2label
    for head, logits in [
        ("mean of both heads", outputs.logits),
        ("class head", outputs.cls_logits),
        ("distillation head", outputs.distillation_logits),
    ]:
        expected = softmax_top_k(logits[0], id2label, 5)
        got = result.heads[head]
        assert labels(got) == [label for label, _ in expected], head
        assert [p.score for p in got] == pytest.approx([score for _, score in expected], abs=1e-6), head
    assert labels(result.heads["class head"]) != labels(result.heads["distillation head"])


def test_models_without_heads_have_none(images: dict[str, Image.Image]) -> None:
    result = classify(images["chelsea"], ["beit-base-224", "perceiver-conv"], top_k=3)
    assert [r.heads for r in result.results] == [{}, {}]
    assert result.to_dict()["heads"] == {}


# --- the JSON result ------------------------------------------------------------------------------


def test_to_dict(images: dict[str, Image.Image]) -> None:
    reset_cache()
    keys = ["levit-128", "beit-base-224"]  # not registry order: the result keeps the request's order
    result = classify(images["chelsea"], keys, top_k=3)
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["predictions", "heads", "timings_ms", "models", "summary"]
    assert list(data["predictions"]) == keys
    assert list(data["timings_ms"]) == keys
    assert list(data["models"]) == keys
    assert list(data["heads"]) == ["levit-128"]
    assert list(data["heads"]["levit-128"]) == LEVIT_HEAD_NAMES
    for key, model_result in zip(keys, result.results, strict=True):
        assert data["predictions"][key] == [{"label": p.label, "score": p.score} for p in model_result.predictions]
        assert len(data["predictions"][key]) == 3
        assert data["models"][key] == {"name": REGISTRY[key].name, "hub_id": REGISTRY[key].hub_id, "device": "cpu"}
        timings = data["timings_ms"][key]
        assert list(timings) == ["preprocess", "inference", "load"]
        assert isinstance(timings["preprocess"], float) and timings["preprocess"] >= 0
        assert isinstance(timings["inference"], float) and timings["inference"] > 0
        assert isinstance(timings["load"], float) and timings["load"] > 0  # freshly loaded
    assert data["summary"] == agreement_summary(result.results) == result.summary
    assert data["summary"]

    again = classify(images["chelsea"], keys, top_k=3).to_dict()
    assert [again["timings_ms"][key]["load"] for key in keys] == [None, None]  # cached
    assert again["predictions"] == data["predictions"]


# --- validate_request -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_keys", "message"),
    [
        ([], "Choose at least one model."),
        (None, "Choose at least one model."),
        ((), "Choose at least one model."),
        (["nope"], f"Unknown model 'nope'. Choose one of: {', '.join(CLASSIFY_KEYS)}."),
        (["levit-128S", "nope"], f"Unknown model 'nope'. Choose one of: {', '.join(CLASSIFY_KEYS)}."),
    ],
)
def test_bad_model_lists(model_keys: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_request(model_keys, 5)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_duplicates_are_dropped_in_order() -> None:
    specs, top_k = validate_request(["levit-128S", "beit-base-224", "levit-128S", "beit-base-224"], 5)
    assert [s.key for s in specs] == ["levit-128S", "beit-base-224"]
    assert top_k == 5
    specs, _ = validate_request("perceiver-conv", 5)
    assert [s.key for s in specs] == ["perceiver-conv"]


WHOLE_NUMBER = f"Top-k must be a whole number from 1 to {MAX_TOP_K}."


@pytest.mark.parametrize(
    ("top_k", "message"),
    [
        (0, "Top-k must be from 1 to 20, not 0."),
        (21, "Top-k must be from 1 to 20, not 21."),
        (-3, "Top-k must be from 1 to 20, not -3."),
        (21.0, "Top-k must be from 1 to 20, not 21.0."),
        (2.5, WHOLE_NUMBER),
        (True, WHOLE_NUMBER),
        (False, WHOLE_NUMBER),
        ("5", WHOLE_NUMBER),
        (None, WHOLE_NUMBER),
        (float("nan"), WHOLE_NUMBER),
        (float("inf"), WHOLE_NUMBER),
    ],
)
def test_bad_top_k(top_k: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_request(["levit-128S"], top_k)
    assert str(caught.value) == message


@pytest.mark.parametrize(("top_k", "expected"), [(5.0, 5), (1, 1), (20, 20), (20.0, 20)])
def test_good_top_k(top_k: float, expected: int) -> None:
    _, value = validate_request(["levit-128S"], top_k)
    assert value == expected
    assert type(value) is int


def test_too_many_models(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("PLAYGROUND_MAX_MODELS_PER_REQUEST", "2")
    with pytest.raises(InputError) as caught:
        validate_request(["levit-128S", "levit-128", "levit-192"], 5)
    assert str(caught.value) == "Choose at most 2 models at once."
    specs, _ = validate_request(["levit-128S", "levit-128", "levit-128S"], 5)  # duplicates count once
    assert [s.key for s in specs] == ["levit-128S", "levit-128"]


def test_classify_rejects_a_bad_request_before_loading(fresh_settings: pytest.MonkeyPatch) -> None:
    calls = []
    cache = ModelCache(10**9, loader=lambda spec: calls.append(spec))  # type: ignore[arg-type,func-returns-value]
    image = Image.new("RGB", (8, 8))
    with pytest.raises(InputError, match="^Top-k must be from 1 to 20, not 0.$"):
        classify(image, ["levit-128S"], top_k=0, cache=cache)
    with pytest.raises(InputError, match="^Choose at least one model.$"):
        classify(image, [], cache=cache)
    assert calls == []


# --- agreement_summary ----------------------------------------------------------------------------


def model_result(name: str, *predictions: tuple[str, float]) -> ModelResult:
    return ModelResult(
        key=name.lower(),
        name=name,
        hub_id=f"x/{name}",
        predictions=[Prediction(label, score) for label, score in predictions],
    )


TABBY, TIGER, EGYPTIAN = "tabby, tabby cat", "tiger cat", "Egyptian cat"


def test_summary_of_no_models() -> None:
    assert agreement_summary([]) == ""


def test_summary_of_one_model() -> None:
    assert agreement_summary([model_result("X", (TABBY, 0.5), (TIGER, 0.2))]) == "X says 'tabby' (50.0%)."
    assert agreement_summary([model_result("Y", (EGYPTIAN, 0.1234))]) == "Y says 'Egyptian cat' (12.3%)."


def test_summary_all_agree() -> None:
    results = [model_result(n, (TABBY, 0.5)) for n in ("A", "B", "C")]
    assert agreement_summary(results) == "All 3 models agree: 'tabby'."


def test_summary_majority() -> None:
    results = [model_result("A", (TABBY, 0.5)), model_result("B", (TIGER, 0.4)), model_result("C", (TABBY, 0.6))]
    assert agreement_summary(results) == "2 of 3 models agree: A and C say 'tabby'; B says 'tiger cat'."


def test_summary_all_differ() -> None:
    results = [model_result("A", (TABBY, 0.5)), model_result("B", (TIGER, 0.4)), model_result("C", (EGYPTIAN, 0.3))]
    assert agreement_summary(results) == "The models differ: A says 'tabby'; B says 'tiger cat'; C says 'Egyptian cat'."


def test_summary_even_split_is_no_majority() -> None:
    results = [
        model_result("A", (TABBY, 0.5)),
        model_result("B", (TABBY, 0.5)),
        model_result("C", (TIGER, 0.4)),
        model_result("D", (TIGER, 0.4)),
    ]
    assert agreement_summary(results) == "The models differ: A and B say 'tabby'; C and D say 'tiger cat'."


def test_summary_notes_a_label_in_every_top_k() -> None:
    results = [
        model_result("A", (TABBY, 0.6), (TIGER, 0.3)),
        model_result("B", (TIGER, 0.5), (TABBY, 0.4)),
    ]
    # tabby: 0.6 + 0.4 = 1.0 beats tiger cat: 0.3 + 0.5 = 0.8
    assert agreement_summary(results) == (
        "The models differ: A says 'tabby'; B says 'tiger cat'. 'tabby' is in every model's top 2."
    )
    results = [
        model_result("A", (TABBY, 0.5), (EGYPTIAN, 0.2), (TIGER, 0.1)),
        model_result("B", (TIGER, 0.5), (EGYPTIAN, 0.3), (TABBY, 0.1)),
        model_result("C", (TIGER, 0.5), (EGYPTIAN, 0.3), (TABBY, 0.1)),
    ]
    # tiger cat 1.1, Egyptian cat 0.8, tabby 0.7
    assert agreement_summary(results) == (
        "2 of 3 models agree: B and C say 'tiger cat'; A says 'tabby'. 'tiger cat' is in every model's top 3."
    )


# --- progress and shared preprocessing ------------------------------------------------------------


def test_progress_reports_increasing_fractions_ending_at_one(images: dict[str, Image.Image]) -> None:
    reports: list[tuple[float, str]] = []
    keys = ["levit-128S", "beit-base-224", "perceiver-conv"]
    classify(images["coffee"], keys, top_k=2, progress=lambda fraction, text: reports.append((fraction, text)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert all(a < b for a, b in itertools.pairwise(fractions))
    assert fractions[-1] == 1.0
    assert [text for _, text in reports] == [f"Running {REGISTRY[k].name}" for k in keys] + ["Done"]


def test_models_with_the_same_processor_share_preprocessing(images: dict[str, Image.Image]) -> None:
    image = images["chelsea"]
    keys = ["levit-128S", "beit-base-224", "levit-128", "levit-192"]
    for key in keys:
        get_cache().get(key)  # loaded beforehand: only preprocessing and inference are timed
    shared = classify(image, keys, top_k=5).results
    preprocess = {r.key: r.preprocess_ms for r in shared}
    assert preprocess["levit-128S"] > 0
    assert preprocess["beit-base-224"] > 0  # a different processor configuration
    assert preprocess["levit-128"] == 0.0
    assert preprocess["levit-192"] == 0.0
    for result in shared:  # reusing the pixels gives the same answer as preprocessing again
        alone = classify(image, [result.key], top_k=5).results[0]
        assert alone.predictions == result.predictions
        assert alone.preprocess_ms > 0


def test_classify_uses_the_given_cache(images: dict[str, Image.Image]) -> None:
    cache = ModelCache(10**9)
    result = classify(images["chelsea"], ["levit-128S"], top_k=5, cache=cache)
    assert cache.loads == {"levit-128S": 1}
    assert result.results[0].load_ms is not None and result.results[0].load_ms > 0
    assert not math.isnan(result.results[0].inference_ms)
    assert classify(images["chelsea"], ["levit-128S"], cache=cache).results[0].load_ms is None
    assert cache.loads == {"levit-128S": 1}
