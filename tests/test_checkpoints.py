"""docs/checkpoints.md records the real checkpoints' settings with their sources; every tiny model
reproduces them (network sizes aside), read back from the files tiny mode saves."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import transformers

from core.models import ensure_tiny_model, load_preprocessor, model_class_of
from core.registry import REGISTRY, get_spec
from core.settings import get_settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "checkpoints.md"
PARTS = {"config", "image_processor", "processor", "tokenizer", "generation"}
BY_DESIGN = {
    ("beit-base-ade-640", "config", "out_indices"): "4 layers instead of 12",
    ("beit-base-ade-640", "config", "use_auxiliary_head"): "the auxiliary head only serves the training loss",
    ("vit-gpt2", "config", "decoder.n_positions"): "a shorter decoder",
    ("vit-gpt2", "generation", "decoder.task_specific_params"): "read by neither transformers 5 nor the app",
    ("trocr-base-handwritten", "config", "decoder.max_position_embeddings"): "a shorter decoder",
    ("trocr-base-printed", "config", "decoder.max_position_embeddings"): "a shorter decoder",
    ("vip-llava-7b", "config", "vision_feature_layers"): "5 vision layers instead of 24",
    **{
        (key, "config", "num_queries"): "20 queries instead of 100" for key in REGISTRY if key.startswith("mask2former")
    },
    ("frcnn-vg", "config", "RESNETS.STEM_OUT_CHANNELS"): "8 channels instead of 64",
    ("frcnn-vg", "config", "RESNETS.RES2_OUT_CHANNELS"): "16 channels instead of 256 (res5 128 instead of 2048)",
    ("frcnn-vg", "config", "RESNETS.WIDTH_PER_GROUP"): "4 instead of 64",
    ("frcnn-vg", "config", "PROPOSAL_GENERATOR.HIDDEN_CHANNELS"): "16 instead of 512",
    ("visualbert-vqa", "config", "visual_embedding_dim"): "the tiny detector's 128-d features instead of 2048",
    ("multimodal-perceiver", "config", "num_latents"): "16 latents instead of 784",
    ("multimodal-perceiver", "config", "d_latents"): "32 channels instead of 512",
    ("multimodal-perceiver", "config", "num_self_attends_per_block"): "1 layer instead of 8",
    ("multimodal-perceiver", "config", "num_self_attention_heads"): "2 heads instead of 8",
    ("multimodal-perceiver", "config", "output_num_channels"): "32 channels instead of 512",
    ("multimodal-perceiver", "config", "_label_trainable_num_channels"): "32 channels instead of 1024",
}
"""Rows a tiny model differs in on purpose: the size of the network (listed in the document too)."""
RENAMED = {"reduce_labels": "do_reduce_labels"}
"""Fields old processor files write under a name transformers 5 reads as another."""
GENERATION_DEFAULTS = transformers.GenerationConfig()._get_default_generation_params()
"""What `generate` uses for a setting no file sets."""


def table() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8").split("## Settings in detail", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in {"key", "---"}:
            continue
        key, part, field, value, source = cells
        rows.append({"key": key, "part": part, "field": field, "value": json.loads(value.strip("`")), "source": source})
    return rows


ROWS = table()


def test_the_table_covers_every_registry_entry_with_a_source() -> None:
    assert {row["key"] for row in ROWS} == set(REGISTRY)
    for row in ROWS:
        assert row["part"] in PARTS, row
        assert len(row["source"]) > 10, row


def test_the_summary_has_one_row_per_registry_entry() -> None:
    summary = DOC.read_text(encoding="utf-8").split("## Summary", 1)[1].split("\n## ", 1)[0]
    keys = [line.split("|")[1].strip() for line in summary.splitlines() if line.startswith("| ")][2:]
    assert keys == list(REGISTRY)
    assert all(f"| {spec.hub_id} |" in summary for spec in REGISTRY.values())


@cache
def tiny(key: str) -> dict[str, Any]:
    spec = get_spec(key)
    folder = ensure_tiny_model(spec, get_settings())
    files = {path.name: json.loads(path.read_text()) for path in folder.glob("*.json")}
    processor = (
        load_preprocessor(getattr(transformers, spec.processor_class), str(folder)) if spec.processor_class else None
    )
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None and (folder / "tokenizer_config.json").exists():
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    generation = transformers.GenerationConfig.from_pretrained(folder) if "generation_config.json" in files else None
    if spec.model_module:  # a class of this project (the detector's config.yaml, as a plain mapping)
        config = model_class_of(spec).load_config(folder).to_dict()
    else:
        config = transformers.AutoConfig.from_pretrained(folder)
    return {"files": files, "processor": processor, "tokenizer": tokenizer, "generation": generation, "config": config}


def _get(source: Any, path: str) -> Any:
    """A dotted path into a config object or a dict; `#len` at the end is a length. KeyError if absent."""
    length = path.endswith("#len")
    for name in path.removesuffix("#len").split("."):
        if isinstance(source, dict):
            source = source[int(name) if name.isdigit() and int(name) in source else name]
        elif hasattr(source, name):
            source = getattr(source, name)
        else:
            raise KeyError(name)
    return len(source) if length else source


def _token(tokenizer: Any, value: Any) -> Any:
    """A special token id as its token string (ids differ: the tiny vocabularies are small)."""
    return tokenizer.convert_ids_to_tokens(value) if isinstance(value, int) else value


def _default_of(obj: Any, path: str) -> Any:
    """What a field is when a file lacks it: the class default (of the sub-config for dotted paths)."""
    *parents, name = path.split(".")
    for parent in parents:
        obj = getattr(obj, parent)
    return getattr(type(obj)(), name, None)


def check(key: str, row: dict[str, Any]) -> str | None:
    """None if the tiny model matches the row, else what differs."""
    saved, part, field, value = tiny(key), row["part"], row["field"], row["value"]
    field = RENAMED.get(field, field)
    if field.startswith("("):  # a whole file the real checkpoint lacks
        name = field.strip("()")
        if name == "generation_config.json" and saved["generation"] is not None:
            stored = {
                name: value
                for name, value in saved["generation"].to_diff_dict().items()
                if not name.endswith("token_id") and name in GENERATION_DEFAULTS and GENERATION_DEFAULTS[name] != value
            }
            return None if not stored else f"{name} stores {stored}"
        present = name in saved["files"] or (name == "preprocessor_config.json" and saved["processor"] is not None)
        return f"{name} exists" if present else None
    if part == "config":
        obj = saved["config"]
    elif part == "image_processor":
        obj = getattr(saved["processor"], "image_processor", saved["processor"])
    elif part == "processor":
        obj = saved["files"].get("processor_config.json", {})
    elif part == "tokenizer":
        obj = saved["tokenizer"]
        if field == "tokenizer_class":
            obj = saved["files"]["tokenizer_config.json"]
        if field == "add_bos_token":  # what the tokenizer does (its backend may not keep the flag)
            adds = obj("a").input_ids[0] == obj.bos_token_id
            return None if adds == value else f"adds a BOS token: {adds}, real {value}"
    else:
        obj = saved["generation"] or transformers.GenerationConfig()
        field = field.removeprefix("decoder.")
    if value == "absent":
        if part == "processor":
            return None if field not in obj else f"{field} = {obj[field]!r}, the real file lacks it"
        actual = _get(obj, field) if _has(obj, field) else None
        default = None if part == "generation" else _default_of(obj, field)
        return None if actual == default or actual is None else f"{field} = {actual!r}, absent means {default!r}"
    if not _has(obj, field):
        if part == "generation" and GENERATION_DEFAULTS.get(field) == value:
            return None  # unset: the global default applies, equal to the real value
        return f"{field} missing"
    actual = _get(obj, field)
    if part == "image_processor" and not field.endswith("#len") and "." not in field:
        value = getattr(type(obj)(**{field: value}), field)  # an old file's int size reads as {height, width}
    if isinstance(value, dict) and set(value) == {"id", "token"}:
        tokenizer = saved["tokenizer"]
        actual = str(actual) if part == "tokenizer" else _token(tokenizer, actual)
        value = value["token"]
    if part == "generation" and actual is None:
        actual = GENERATION_DEFAULTS.get(field)
    return None if actual == value else f"{field} = {actual!r}, real {value!r}"


def _has(obj: Any, path: str) -> bool:
    try:
        _get(obj, path)
    except (KeyError, AttributeError, IndexError):
        return False
    return True


@pytest.mark.parametrize("key", list(REGISTRY))
def test_the_tiny_model_reproduces_the_real_settings(key: str) -> None:
    rows = [row for row in ROWS if row["key"] == key and (key, row["part"], row["field"]) not in BY_DESIGN]
    assert rows
    differences = [f"{row['part']}: {difference}" for row in rows if (difference := check(key, row))]
    assert not differences, "\n".join(differences)


def test_the_document_lists_the_differences_by_design() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Differences in tiny mode", 1)[1]
    for field in {field.split(".")[-1] for _, _, field in BY_DESIGN} - {"task_specific_params"}:
        assert re.search(rf"`{field}`|{field}", section), field
