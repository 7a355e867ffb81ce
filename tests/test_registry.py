"""Tests for core.registry (the checkpoints and their tiny twins) and core.download."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
import transformers
import yaml

import core.registry
from core.classify import output_labels
from core.download import CONFIG_FILES, download, files_to_fetch, main, repositories, select_specs, spaces_header
from core.errors import InputError
from core.images import load_image
from core.models import TINY_FORMAT_VERSION, ensure_tiny_model, load_model, model_class_of, tiny_model_dir
from core.registry import REGISTRY, ModelSpec, get_spec, imagenet_labels, specs_for
from core.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"

ISSUE_CHECKPOINTS = {
    "beit-base-224": "microsoft/beit-base-patch16-224",
    "beit-base-224-22k": "microsoft/beit-base-patch16-224-pt22k-ft22k",
    "levit-128S": "facebook/levit-128S",
    "levit-128": "facebook/levit-128",
    "levit-192": "facebook/levit-192",
    "levit-256": "facebook/levit-256",
    "levit-384": "facebook/levit-384",
    "perceiver-learned": "deepmind/vision-perceiver-learned",
    "perceiver-fourier": "deepmind/vision-perceiver-fourier",
    "perceiver-conv": "deepmind/vision-perceiver-conv",
}
LEVIT_HEADS = (("cls_logits", "class head"), ("distillation_logits", "distillation head"))
PROCESSOR_FAMILY = {
    "BEiT": "BeitImageProcessor",
    "LeViT": "LevitImageProcessor",
    "Perceiver": "PerceiverImageProcessor",
}


def num_labels_of(spec: ModelSpec) -> int:
    return 21841 if spec.hub_id == "microsoft/beit-base-patch16-224-pt22k-ft22k" else 1000


# --- the registry itself -------------------------------------------------------------------------


def test_every_issue_checkpoint_is_present_with_its_hub_id() -> None:
    for key, hub_id in ISSUE_CHECKPOINTS.items():
        assert key in REGISTRY, key
        assert REGISTRY[key].hub_id == hub_id
        assert REGISTRY[key].task == "classify"
    assert [s.key for s in specs_for("classify")][: len(ISSUE_CHECKPOINTS)] == list(ISSUE_CHECKPOINTS)


def test_keys_and_hub_ids_are_unique() -> None:
    hub_ids = [spec.hub_id for spec in REGISTRY.values()]
    assert len(hub_ids) == len(set(hub_ids))
    for key, spec in REGISTRY.items():
        assert spec.key == key
        assert spec.slug == key.replace("/", "--")


@pytest.mark.parametrize("key", list(REGISTRY))
def test_classes_resolve_in_transformers(key: str) -> None:
    spec = REGISTRY[key]
    model_class = model_class_of(spec)
    if spec.model_module is None:
        assert issubclass(model_class, transformers.PreTrainedModel)
    else:  # a class of this project that loads and saves like one
        assert callable(model_class.from_pretrained) and callable(model_class.save_pretrained)
    if spec.processor_class is not None:
        assert hasattr(getattr(transformers, spec.processor_class), "from_pretrained")
    assert spec.name and spec.family and spec.description
    assert spec.params_millions > 0


def test_levit_entries_use_the_teacher_model_and_declare_both_heads() -> None:
    levits = [spec for spec in REGISTRY.values() if spec.family == "LeViT"]
    assert [s.key for s in levits] == ["levit-128S", "levit-128", "levit-192", "levit-256", "levit-384"]
    output_class = transformers.models.levit.modeling_levit.LevitForImageClassificationWithTeacherOutput
    output_fields = {f.name for f in dataclasses.fields(output_class)}
    for spec in levits:
        assert spec.model_class == "LevitForImageClassificationWithTeacher"
        assert spec.heads == LEVIT_HEADS
        assert {attr for attr, _ in spec.heads} <= output_fields
    assert all(spec.heads == () for spec in REGISTRY.values() if spec.family != "LeViT")


def test_imagenet_labels() -> None:
    labels_1k = imagenet_labels(1000)
    assert len(labels_1k) == 1000
    assert labels_1k[0] == "tench, Tinca tinca"
    assert labels_1k[281] == "tabby, tabby cat"
    assert labels_1k[-1] == "toilet tissue, toilet paper, bathroom tissue"
    labels_22k = imagenet_labels(21841)
    assert len(labels_22k) == 21841
    assert labels_22k[0] == "organism, being"
    assert all(label.strip() == label and label for label in labels_1k)
    with pytest.raises(ValueError, match="no ImageNet label list with 10 classes"):
        imagenet_labels(10)


CLASSIFY_KEYS = ", ".join(s.key for s in specs_for("classify"))


def test_get_spec() -> None:
    assert get_spec("levit-128S") is REGISTRY["levit-128S"]
    assert get_spec("levit-128S", "classify") is REGISTRY["levit-128S"]
    with pytest.raises(InputError) as caught:
        get_spec("nope")
    assert str(caught.value) == f"Unknown model 'nope'. Choose one of: {', '.join(REGISTRY)}."
    with pytest.raises(InputError) as caught:
        get_spec("nope", "classify")
    assert str(caught.value) == f"Unknown model 'nope'. Choose one of: {CLASSIFY_KEYS}."
    with pytest.raises(InputError, match=r"^Unknown model 'None'\."):
        get_spec(None)  # type: ignore[arg-type]
    with pytest.raises(InputError) as caught:
        get_spec("x" * 500)
    assert f"'{'x' * 60}'" in str(caught.value) and "x" * 61 not in str(caught.value)


def test_get_spec_of_another_task_names_that_tasks_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    other = dataclasses.replace(REGISTRY["levit-128S"], key="fake-detector", task="fake-task", hub_id="x/fake")
    monkeypatch.setitem(core.registry.REGISTRY, "fake-detector", other)
    with pytest.raises(InputError) as caught:
        get_spec("fake-detector", "classify")
    assert str(caught.value) == f"Unknown model 'fake-detector'. Choose one of: {CLASSIFY_KEYS}."
    with pytest.raises(InputError) as caught:
        get_spec("levit-128S", "fake-task")
    assert str(caught.value) == "Unknown model 'levit-128S'. Choose one of: fake-detector."


# --- tiny models: build, save, reload with from_pretrained ---------------------------------------


@pytest.fixture(scope="module")
def two_images() -> tuple[Any, Any]:
    return load_image(ASSETS / "chelsea.jpg"), load_image(ASSETS / "coffee.jpg")


@pytest.mark.parametrize("key", [spec.key for spec in specs_for("classify")])
def test_tiny_model_builds_saves_and_reloads(
    key: str, fresh_settings: pytest.MonkeyPatch, tmp_path: Path, two_images: tuple[Any, Any]
) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY_DIR", str(tmp_path))
    spec = REGISTRY[key]
    settings = get_settings()
    assert settings.tiny is True and settings.tiny_dir == tmp_path

    folder = ensure_tiny_model(spec, settings)
    assert folder == tmp_path / f"v{TINY_FORMAT_VERSION}" / key == tiny_model_dir(spec, settings)
    marker = json.loads((folder / "tiny-model.json").read_text(encoding="utf-8"))
    assert marker["key"] == key and marker["hub_id"] == spec.hub_id
    weights = folder / "model.safetensors"
    assert weights.is_file()
    assert (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == [key]  # no staging folder left behind
    mtime = weights.stat().st_mtime_ns

    loaded = load_model(spec)
    model = loaded.model
    num_labels = num_labels_of(spec)
    assert type(model).__name__ == spec.model_class
    assert type(loaded.processor).__name__.startswith(PROCESSOR_FAMILY[spec.family])
    assert model.config.num_labels == num_labels
    assert model.config.id2label[0] == imagenet_labels(num_labels)[0]
    assert output_labels(model.config)[num_labels - 1] == imagenet_labels(num_labels)[-1]  # BEiT-22k: keys with gaps
    assert model.training is False
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.load_seconds >= 0

    logits = []
    for image in two_images:
        pixel_values = loaded.processor(images=image, return_tensors="pt")["pixel_values"]
        assert tuple(pixel_values.shape) == (1, 3, 224, 224)
        with torch.inference_mode():
            logits.append(model(pixel_values=pixel_values).logits)
    assert tuple(logits[0].shape) == (1, num_labels)
    assert torch.isfinite(logits[0]).all() and torch.isfinite(logits[1]).all()
    assert (logits[0] - logits[1]).abs().max().item() > 1e-3  # the tiny model looks at the image

    time.sleep(0.01)
    assert ensure_tiny_model(spec, settings) == folder
    assert weights.stat().st_mtime_ns == mtime


def test_tiny_weights_are_deterministic(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = REGISTRY["levit-128S"]
    settings = get_settings()
    first = ensure_tiny_model(spec, dataclasses.replace(settings, tiny_dir=tmp_path / "a"))
    second = ensure_tiny_model(spec, dataclasses.replace(settings, tiny_dir=tmp_path / "b"))
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


# --- core.download --------------------------------------------------------------------------------


def test_select_specs() -> None:
    assert select_specs(True, [], []) == list(REGISTRY.values())
    assert select_specs(False, ["classify"], []) == specs_for("classify")
    assert [s.key for s in select_specs(False, [], ["levit-128S", "beit-base-224"])] == ["levit-128S", "beit-base-224"]
    assert select_specs(False, ["classify"], ["levit-128S"]) == specs_for("classify")  # no duplicates
    assert select_specs(False, [], []) == []
    tasks = ", ".join(sorted({s.task for s in REGISTRY.values()}))
    with pytest.raises(SystemExit, match=rf"No models for task 'nope'\. Tasks: {tasks}"):
        select_specs(False, ["nope"], [])
    with pytest.raises(InputError, match="Unknown model 'nope'"):
        select_specs(False, [], ["nope"])


def test_download_passes_hub_id_and_allow_patterns() -> None:
    calls = []

    def fake(repo_id: str, **kwargs: Any) -> str:
        calls.append((repo_id, kwargs))
        return f"/cache/{repo_id}"

    def files(safetensors: bool) -> Any:
        return lambda repo_id: ["config.json", "model.safetensors" if safetensors else "pytorch_model.bin"]

    spec = REGISTRY["perceiver-conv"]
    assert (
        download(spec, snapshot_download=fake, list_repo_files=files(True)) == "/cache/deepmind/vision-perceiver-conv"
    )
    download(REGISTRY["perceiver-flow"], snapshot_download=fake, list_repo_files=files(False))
    assert calls == [
        ("deepmind/vision-perceiver-conv", {"allow_patterns": [*CONFIG_FILES, "*.safetensors"]}),
        ("deepmind/optical-flow-perceiver", {"allow_patterns": [*CONFIG_FILES, "*.bin"]}),
    ]
    assert "*.json" in CONFIG_FILES


def test_spaces_header_lists_only_the_files_the_app_loads() -> None:
    repos = {
        "microsoft/trocr-base-handwritten": [
            ".gitattributes",
            "README.md",
            "config.json",
            "generation_config.json",
            "merges.txt",
            "model.safetensors",
            "preprocessor_config.json",
            "pytorch_model.bin",
            "special_tokens_map.json",
            "tokenizer_config.json",
            "vocab.json",
        ],
        "llava-hf/vip-llava-7b-hf": [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "pytorch_model.bin.index.json",
            "tokenizer.model",
        ],
    }
    listed = {
        spec.hub_id: files_to_fetch(repos.get(spec.hub_id, ["config.json", "pytorch_model.bin", "flax_model.msgpack"]))
        for spec in REGISTRY.values()
    }
    assert listed["microsoft/trocr-base-handwritten"] == [
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    assert listed["llava-hf/vip-llava-7b-hf"] == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "tokenizer.model",
    ]
    assert listed["facebook/levit-128S"] == ["config.json", "pytorch_model.bin"]
    header = spaces_header(lambda repo: repos.get(repo, ["config.json", "pytorch_model.bin"]))
    lines = header.splitlines()
    assert lines[0] == "preload_from_hub:"
    assert [line.split()[1] for line in lines[1:]] == repositories()
    assert "  - microsoft/trocr-base-handwritten config.json,generation_config.json,merges.txt," in header
    assert (
        yaml.safe_load(header)["preload_from_hub"][0] == "microsoft/beit-base-patch16-224 config.json,pytorch_model.bin"
    )


def test_main_tiny_builds_the_model(
    fresh_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY_DIR", str(tmp_path))
    assert main(["--tiny", "--model", "levit-128S"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / f"v{TINY_FORMAT_VERSION}" / "levit-128S"
    assert [line.split() for line in out.splitlines()] == [["ok", "levit-128S", str(folder)]]
    assert (folder / "tiny-model.json").is_file()


def test_main_offline_reports_failure_without_crashing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True  # conftest: no network in tests
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    start = time.perf_counter()
    assert main(["--model", "levit-128S", "--model", "beit-base-224"]) == 1
    assert time.perf_counter() - start < 10
    captured = capsys.readouterr()
    assert captured.out == ""
    failures = captured.err.splitlines()
    assert len(failures) == 2
    assert failures[0].split()[:3] == ["FAIL", "levit-128S", "facebook/levit-128S:"]
    assert failures[1].split()[:3] == ["FAIL", "beit-base-224", "microsoft/beit-base-patch16-224:"]


def test_main_list_and_no_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [[s.key, s.task, s.hub_id] for s in REGISTRY.values()]
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "say which models" in capsys.readouterr().err
