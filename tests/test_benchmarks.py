"""The benchmark command's parts that can be checked quickly: its full-size architectures are the real
ones (parameter counts equal the registry's, built on the meta device), its checkpoints load through
the app's loader and answer, and recording replaces only its own section of the results file."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers

from benchmarks import __main__ as command
from benchmarks.common import Row, markdown_table, measure_pair
from benchmarks.full_size import FULL_SIZE, local_loader, save_full_size
from core.registry import get_spec


@pytest.mark.parametrize("key", sorted(FULL_SIZE))
def test_full_size_architectures_have_the_real_parameter_counts(key: str) -> None:
    spec = get_spec(key)
    tiny_config, *_ = spec.build_tiny()
    with torch.device("meta"):
        model = getattr(transformers, spec.model_class)(FULL_SIZE[key](tiny_config))
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert millions == pytest.approx(spec.params_millions, rel=0.01)
    assert model.config.id2label == tiny_config.id2label or key == "vit-gpt2"


def test_a_saved_full_size_checkpoint_loads_through_the_app_loader_and_answers(tmp_path, monkeypatch) -> None:
    from core.classify import classify_loaded

    spec = get_spec("levit-128S")
    folder = save_full_size(spec.key, tmp_path)
    assert (folder / "config.json").exists() and (folder / "preprocessor_config.json").exists()
    loaded = local_loader(tmp_path)(spec)
    assert loaded.spec == spec and loaded.load_seconds > 0
    assert sum(p.numel() for p in loaded.model.parameters()) / 1e6 == pytest.approx(spec.params_millions, rel=0.01)
    from PIL import Image

    result = classify_loaded(Image.new("RGB", (300, 200), (200, 40, 40)), loaded, top_k=3)
    scores = [p.score for p in result.predictions]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and scores[0] < 1.0


def test_measure_pair_runs_both_alternately_and_reports_medians() -> None:
    calls: list[str] = []
    ours_s, reference_s, ours_mb, reference_mb = measure_pair(
        lambda: calls.append("ours"), lambda: calls.append("ref"), repeat=3, device=torch.device("cpu"), warmup=1
    )
    assert calls == ["ours", "ref", "ours", "ref", "ref", "ours", "ours", "ref"]
    assert ours_s >= 0 and reference_s >= 0 and ours_mb >= 0 and reference_mb >= 0


def test_record_replaces_only_its_own_section(tmp_path, monkeypatch) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n", encoding="utf-8")
    monkeypatch.setattr(command, "RESULTS", results)
    row = Row("classify", "m", "cpu float32", "1", ours_s=1.0, reference_s=2.0, reference="pipeline")
    command.record("first cpu\n" + markdown_table([row]) + "\n", "cpu classify")
    command.record("first cuda\n", "cuda classify")
    command.record("second cpu\n" + markdown_table([dataclasses.replace(row, ours_s=0.5)]) + "\n", "cpu classify")
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\nintro\n")
    assert "first cpu" not in text and "second cpu" in text and "first cuda" in text
    assert text.count("<!-- cpu classify start -->") == 1 and "| 4.00x |" in text
