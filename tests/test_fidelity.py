"""Real checkpoints' own settings are honoured: the image processor backend is chosen in one place,
ViP-LLaVA's processor is completed from the model's config when older files lack fields, and settings
a checkpoint stores for `generate` never apply unseen."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from PIL import Image

from core import caption as core_caption
from core import chat as core_chat
from core.caption import Decoding
from core.errors import ModelUnavailableError
from core.images import load_image
from core.models import IMAGE_PROCESSOR_BACKEND, ModelCache, ensure_tiny_model, load_model, load_preprocessor
from core.registry import REGISTRY, get_spec
from core.settings import get_settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TROCR_STORED = {
    "max_length": 64,
    "num_beams": 4,
    "early_stopping": True,
    "no_repeat_ngram_size": 3,
    "length_penalty": 2.0,
}
"""What microsoft/trocr-base-* store in config.json (docs/checkpoints.md)."""


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return load_image(ASSETS / "coffee.jpg")


# --- image processor backend ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", [key for key, spec in REGISTRY.items() if spec.processor_class])
def test_every_image_processor_is_the_pil_one_asked_for_explicitly(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []
    original = transformers.AutoImageProcessor.from_pretrained.__func__

    def spy(cls: type, source: str, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return original(cls, source, **kwargs)

    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", classmethod(spy))
    spec = get_spec(key)
    folder = str(ensure_tiny_model(spec, get_settings()))
    processor = load_preprocessor(getattr(transformers, spec.processor_class), folder)
    image_processor = getattr(processor, "image_processor", processor)
    assert isinstance(image_processor, transformers.image_processing_backends.PilBackend)
    assert {"backend": IMAGE_PROCESSOR_BACKEND} in asked
    assert IMAGE_PROCESSOR_BACKEND == "pil"
    if image_processor is not processor:  # a processor: its tokenizer is not handed the image backend
        assert getattr(processor.tokenizer, "backend", None) != "pil"


# --- ViP-LLaVA: processor files saved by older transformers versions -----------------------------------


def _legacy_vip_llava(tmp_path: Path) -> Path:
    """The tiny ViP-LLaVA laid out as llava-hf saved it before processors kept their own fields: the image
    processor in preprocessor_config.json, no processor_config.json (so no patch_size,
    vision_feature_select_strategy or num_additional_image_tokens)."""
    folder = tmp_path / "vip-llava-legacy"
    shutil.copytree(ensure_tiny_model(get_spec("vip-llava-7b"), get_settings()), folder)
    saved = json.loads((folder / "processor_config.json").read_text())
    assert {"patch_size", "vision_feature_select_strategy", "num_additional_image_tokens"} <= saved.keys()
    image_processor = {**saved["image_processor"], "processor_class": "LlavaProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(image_processor))
    (folder / "processor_config.json").unlink()
    return folder


def _image_tokens(processor: Any, image: Image.Image) -> int:
    inputs = processor(images=image, text=core_chat.build_prompt("What is this?"), return_tensors="pt")
    return int((inputs["input_ids"] == processor.image_token_id).sum())


def test_a_processor_saved_without_its_fields_is_completed_from_the_config(tmp_path: Path, coffee: Image.Image) -> None:
    legacy = load_preprocessor(transformers.AutoProcessor, str(_legacy_vip_llava(tmp_path)))
    assert (legacy.patch_size, legacy.vision_feature_select_strategy, legacy.num_additional_image_tokens) == (
        None,
        None,
        0,
    )
    with pytest.raises(TypeError):  # what transformers 5 does with such a processor
        _image_tokens(legacy, coffee)
    legacy.patch_size = 14
    legacy.vision_feature_select_strategy = "default"
    assert _image_tokens(legacy, coffee) == 575  # one too few without the class token

    reloaded = load_preprocessor(transformers.AutoProcessor, str(tmp_path / "vip-llava-legacy"))
    config = transformers.AutoConfig.from_pretrained(tmp_path / "vip-llava-legacy")
    core_chat.complete_processor(reloaded, config)
    assert (reloaded.patch_size, reloaded.vision_feature_select_strategy, reloaded.num_additional_image_tokens) == (
        14,
        "default",
        1,
    )
    assert _image_tokens(reloaded, coffee) == core_chat.image_feature_count(config) == 576


def test_the_chat_answers_with_a_legacy_processor(tmp_path: Path, coffee: Image.Image) -> None:
    folder = _legacy_vip_llava(tmp_path)
    legacy = load_preprocessor(transformers.AutoProcessor, str(folder))
    cache = ModelCache(2**40, loader=lambda spec: dataclasses.replace(load_model(spec), processor=legacy))
    result = core_chat.chat(coffee, [], "What is this?", options=core_chat.ChatOptions(0, 0.9, 4, 0), cache=cache)
    assert result.done and result.new_tokens > 0
    assert legacy.patch_size == 14 and legacy.num_additional_image_tokens == 1


def test_a_prompt_whose_image_tokens_do_not_match_the_features_is_refused() -> None:
    config = transformers.AutoConfig.from_pretrained(ensure_tiny_model(get_spec("vip-llava-7b"), get_settings()))
    ids = torch.full((1, 600), 5)
    ids[0, 10:585] = config.image_token_index  # 575 image tokens for 576 features
    with pytest.raises(ModelUnavailableError, match="575 image tokens.*576 image features"):
        core_chat.check_image_tokens(ids, config)
    ids[0, 585] = config.image_token_index
    core_chat.check_image_tokens(ids, config)


# --- captions: stored generation settings never apply unseen --------------------------------------------


@pytest.fixture(scope="module")
def trocr_with_stored_settings() -> Any:
    """A TrOCR whose generation config stores decoding settings (own copy, not the cache's)."""
    loaded = load_model(get_spec("trocr-base-printed"))
    loaded.model.generation_config.update(**TROCR_STORED)
    return loaded


def _plain_generate(loaded: Any, image: Image.Image, **settings: Any) -> list[str]:
    """`generate(**settings)` on the model as if its checkpoint stored nothing but its special tokens."""
    stored = loaded.model.generation_config
    names = ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id")
    loaded.model.generation_config = transformers.GenerationConfig(**{name: getattr(stored, name) for name in names})
    try:
        pixels = core_caption.pixel_values(loaded, [image])
        with torch.inference_mode():
            sequences = loaded.model.generate(pixel_values=pixels, **settings)
    finally:
        loaded.model.generation_config = stored
    return core_caption.decode(loaded, sequences)


@pytest.mark.parametrize(
    ("decoding", "settings"),
    [
        (Decoding("greedy", max_new_tokens=16), {"max_new_tokens": 16}),
        (
            Decoding("beam", max_new_tokens=16, num_beams=3, n_best=2),
            {"max_new_tokens": 16, "num_beams": 3, "num_return_sequences": 2},
        ),
    ],
)
def test_what_runs_is_what_the_tab_shows(
    trocr_with_stored_settings: Any, decoding: Decoding, settings: dict[str, Any]
) -> None:
    line = load_image(ASSETS / "text-line.png")
    result = core_caption.caption_loaded(line, trocr_with_stored_settings, decoding)
    assert [c.text for c in result.candidates] == _plain_generate(trocr_with_stored_settings, line, **settings)
    generation = result.generation
    assert generation["num_beams"] == decoding.num_beams if decoding.mode == "beam" else generation["num_beams"] == 1
    assert generation["no_repeat_ngram_size"] == 0
    assert generation["length_penalty"] == 1.0
    assert generation["early_stopping"] is False
    assert generation["max_new_tokens"] == 16
    assert generation["decoder_start_token_id"] == trocr_with_stored_settings.model.generation_config.eos_token_id
    assert trocr_with_stored_settings.model.generation_config.use_cache is False  # as TrOCR's decoder config stores
    assert generation["use_cache"] is True


def test_stored_settings_would_change_the_caption_otherwise(trocr_with_stored_settings: Any) -> None:
    """The test above can fail: with the stored settings left to apply, generate writes something else."""
    line = load_image(ASSETS / "text-line.png")
    pixels = core_caption.pixel_values(trocr_with_stored_settings, [line])
    with torch.inference_mode():
        stored = trocr_with_stored_settings.model.generate(pixel_values=pixels, max_new_tokens=16)
    explicit = _plain_generate(trocr_with_stored_settings, line, max_new_tokens=16)
    assert core_caption.decode(trocr_with_stored_settings, stored) != explicit


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0, -1.0])
def test_the_n_best_score_is_the_sum_of_log_probabilities_over_length_to_the_penalty(
    length_penalty: float, coffee: Image.Image
) -> None:
    loaded = load_model(get_spec("vit-gpt2"))
    loaded.model.generation_config.update(length_penalty=2.0)  # a stored setting must not change the score
    decoding = Decoding("beam", max_new_tokens=10, num_beams=4, n_best=4, length_penalty=length_penalty)
    kwargs = decoding.generate_kwargs()
    pixels = core_caption.pixel_values(loaded, [coffee])
    with torch.inference_mode():
        output = loaded.model.generate(pixel_values=pixels, **kwargs)
        result = core_caption.caption_loaded(coffee, loaded, decoding)
        eos = loaded.model.generation_config.eos_token_id
        for sequence, candidate in zip(output.sequences, result.candidates, strict=True):
            logits = loaded.model(pixel_values=pixels, decoder_input_ids=sequence[None, :-1]).logits[0]
            log_probs = logits.log_softmax(-1).gather(1, sequence[1:, None])[:, 0]
            generated = sequence[1:].tolist()
            length = generated.index(eos) + 1 if eos in generated else len(generated)
            expected = float(log_probs[:length].sum()) / length**length_penalty
            assert candidate.score == pytest.approx(expected, abs=1e-4)
    assert result.generation["length_penalty"] == length_penalty
