"""Quick answers with VisualBERT in tiny mode: answers equal a direct VisualBERT call on the same region
features, the region cache, regions and their drawing, question checks and notes, the name lists."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import core.vqa as core_vqa
from core.errors import InputError, ModelUnavailableError
from core.images import load_image
from core.label_files import fetch_label_files, label_folder, parse, read_label_files
from core.models import get_cache
from core.registry import get_spec
from core.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
QUESTION = "What animal is this?"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return load_image(ASSETS / "chelsea.jpg")


@pytest.fixture(scope="module")
def asked(photo: Image.Image) -> core_vqa.VqaResult:
    """One question about the photo (its regions then stay in the app's region cache)."""
    return core_vqa.ask(photo, QUESTION, 5)


def test_answers_equal_a_direct_visualbert_call_on_the_same_features(asked: core_vqa.VqaResult) -> None:
    loaded, _ = get_cache().get("visualbert-vqa")
    folder = label_folder(get_spec("visualbert-vqa"), get_settings())
    answers = parse((folder / "answers.txt").read_text(encoding="utf-8"))
    assert len(answers) == 3129 == loaded.model.config.num_labels
    features = asked.detection.photo.features
    tokens = loaded.tokenizer(
        [QUESTION],
        padding="max_length",
        max_length=20,
        truncation=True,
        return_token_type_ids=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        logits = loaded.model(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            token_type_ids=tokens.token_type_ids,
            visual_embeds=features[None],
            visual_attention_mask=torch.ones(features.shape[:-1])[None],
        ).logits
    scores, indices = logits.softmax(-1)[0].topk(5)
    assert [a.answer for a in asked.answers] == [answers[i] for i in indices.tolist()]
    assert [a.score for a in asked.answers] == pytest.approx(scores.tolist(), abs=1e-6)
    assert asked.answers[0].answer.startswith("placeholder answer ")  # tiny mode: marked placeholders
    assert asked.question_tokens == len(loaded.tokenizer(QUESTION).input_ids)


def test_a_second_question_about_the_same_photo_runs_visualbert_only(
    photo: Image.Image, asked: core_vqa.VqaResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[Any] = []
    # the detector is not needed to check the cache: a stand-in that counts its runs
    monkeypatch.setattr(core_vqa, "detect_loaded", lambda *args: runs.append(args) or asked.detection.photo)
    again = core_vqa.ask(photo.copy(), "What color is it?", 3)  # another object, the same pixels
    assert runs == []
    data = again.to_dict()
    assert data["regions_from_cache"] is True and data["timings_ms"]["detect"] is None
    assert data["timings_ms"]["answer"] > 0 and data["timings_ms"]["load_detector"] is None
    assert data["regions"] == asked.to_dict()["regions"]
    assert len(data["answers"]) == 3
    other = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    cache = core_vqa.RegionCache(size=1)
    first = core_vqa.detect(other, region_cache=cache)
    assert len(runs) == 1 and first.detect_ms is not None and len(cache) == 1
    assert core_vqa.detect(other, region_cache=cache).detect_ms is None
    core_vqa.detect(photo, region_cache=cache)  # a second photo pushes the first out
    assert len(runs) == 2 and len(cache) == 1
    assert core_vqa.photo_key(other) != core_vqa.photo_key(photo) == core_vqa.photo_key(photo.copy())


def test_regions_are_in_the_photo_and_named(photo: Image.Image, asked: core_vqa.VqaResult) -> None:
    detector, _ = get_cache().get("frcnn-vg")
    regions = asked.detection.photo.regions
    assert 1 <= len(regions) <= 36 == detector.model.max_detections
    assert asked.detection.photo.features.shape == (len(regions), 128)  # the tiny detector's feature size
    width, height = photo.size
    for region in regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert region.object == f"placeholder object {region.object_id}"
        assert region.attribute == f"placeholder attribute {region.attribute_id}"
        assert 0 <= region.score <= 1 and 0 <= region.attribute_score <= 1
        assert region.label == f"{region.attribute} {region.object}"
    scores = [r.score for r in regions]
    assert scores == sorted(scores, reverse=True)
    data = [r.to_dict() for r in regions]
    shown = core_vqa.visible_regions(data, 0.0, 3)
    assert shown == data[:3]
    assert core_vqa.visible_regions(data, 1.01, 10) == []
    assert core_vqa.display_name("multi colored,multi-colored,multicolored") == "multi colored"


def test_drawing_frames_each_region_and_labels_it() -> None:
    photo = Image.new("RGB", (200, 100), (255, 255, 255))
    region = {"box": [20.0, 40.0, 120.0, 90.0], "object": "cup", "attribute": "red", "score": 0.9}
    drawn = core_vqa.draw_regions(photo, [region])
    assert drawn.size == photo.size and photo.getpixel((20, 60)) == (255, 255, 255)
    assert drawn.getpixel((20, 60)) == core_vqa.PALETTE[0]  # the box's left edge
    assert drawn.getpixel((70, 65)) == (255, 255, 255)  # inside the box: the photo
    assert drawn.getpixel((22, 30)) != (255, 255, 255)  # the label above the box
    assert core_vqa.draw_regions(photo, []).tobytes() == photo.tobytes()


def test_question_checks_and_notes(photo: Image.Image, asked: core_vqa.VqaResult) -> None:
    for empty in ("", "   ", None, 3):
        with pytest.raises(InputError, match="Type a question about the photo"):
            core_vqa.ask(photo, empty)
    with pytest.raises(InputError, match="characters long; the limit is"):
        core_vqa.ask(photo, "why " * 1000)
    for top_k in (0, 21, 2.5, "5"):
        with pytest.raises(InputError, match="Top-k must be"):
            core_vqa.ask(photo, QUESTION, top_k)
    assert asked.notes == []
    long = core_vqa.ask(photo, "What is the colour of the small round object next to the cat on the left?", 1)
    assert long.question_tokens > core_vqa.QUESTION_TOKENS
    assert any("VisualBERT reads the first 18" in note for note in long.notes)
    spanish = core_vqa.ask(photo, "¿De qué color es el gato?", 1).to_dict()
    assert any("does not look like English" in note for note in spanish["notes"])
    assert len(spanish["answers"]) == 1  # answered all the same


def test_few_or_unconfident_regions_are_said(asked: core_vqa.VqaResult) -> None:
    photo = asked.detection.photo
    low = [dataclasses.replace(r, score=0.01) for r in photo.regions[:3]]
    notes = core_vqa.region_notes(dataclasses.replace(photo, regions=low))
    assert notes[0].startswith("Only 3 regions found (the detector usually keeps 10 or more)")
    assert "No region scores 0.2 or more" in notes[1]
    assert core_vqa.region_notes(dataclasses.replace(photo, regions=[])) == [
        "Only 0 regions found (the detector usually keeps 10 or more): the answer rests on little."
    ]


def test_name_lists_missing_offline_say_what_to_do(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY", "0")
    fresh_settings.setenv("PLAYGROUND_LABELS_DIR", str(tmp_path / "labels"))
    with pytest.raises(ModelUnavailableError) as caught:
        read_label_files(get_spec("frcnn-vg"), get_settings())
    message = str(caught.value)
    assert "(objects.txt, attributes.txt) are not on this machine" in message
    assert "python -m core.download --model frcnn-vg" in message and "raw.githubusercontent.com" in message


def test_fetching_the_name_lists(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY", "0")
    fresh_settings.setenv("PLAYGROUND_LABELS_DIR", str(tmp_path))
    fetched: list[str] = []

    class Response:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self, limit: int) -> bytes:
            return self.body[:limit]

    def urlopen(url: str, timeout: float) -> Response:
        fetched.append(url)
        return Response(b"gray,grey\nyes\n\n" if "attributes" in url else b"yolk\ngoal\n")

    spec = get_spec("frcnn-vg")
    folder = fetch_label_files(spec, get_settings(), urlopen=urlopen)
    assert folder == tmp_path / "frcnn-vg"
    assert fetched == [url for _, url in spec.label_files]
    assert read_label_files(spec, get_settings()) == {"objects": ("yolk", "goal"), "attributes": ("gray,grey", "yes")}
    with pytest.raises(ValueError, match="larger than"):
        fetch_label_files(spec, get_settings(), urlopen=lambda url, timeout: Response(b"x" * (2 << 20)))


def test_download_fetches_the_tokenizer_repository_and_the_name_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.label_files
    from core.download import CONFIG_FILES, download

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(core.label_files, "fetch_label_files", lambda spec, settings: calls.append(("names", spec.key)))

    def snapshot(repo: str, **kwargs: Any) -> str:
        calls.append((repo, kwargs["allow_patterns"]))
        return f"/cache/{repo}"

    where = download(
        get_spec("visualbert-vqa"), snapshot_download=snapshot, list_repo_files=lambda r: ["pytorch_model.bin"]
    )
    assert where == "/cache/uclanlp/visualbert-vqa"
    assert calls == [
        ("uclanlp/visualbert-vqa", [*CONFIG_FILES, "*.bin"]),
        ("google-bert/bert-base-uncased", CONFIG_FILES),
        ("names", "visualbert-vqa"),
    ]
    assert "*.yaml" in CONFIG_FILES  # the detector's config.yaml


def test_tiny_and_thin_photos_are_read(asked: core_vqa.VqaResult) -> None:
    detector, _ = get_cache().get("frcnn-vg")
    for size in ((1, 1), (3000, 2)):  # upscaled to 800 px; a thin one capped at 1333 and padded
        found = core_vqa.detect_loaded(Image.new("RGB", size, (90, 140, 200)), detector)
        assert 1 <= len(found.regions) <= 36 and found.image_size == size
        for region in found.regions:
            x0, y0, x1, y1 = region.box
            assert 0 <= x0 <= x1 <= size[0] and 0 <= y0 <= y1 <= size[1]
