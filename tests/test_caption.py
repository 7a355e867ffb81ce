"""Tests for core.caption and core.tiny.text: parity with `model.generate` + `batch_decode` for greedy,
beam and seeded sampling, batches, streaming, validation, the tiny tokenizers and models."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from PIL import Image

from core.caption import (
    MAX_BATCH_IMAGES,
    Candidate,
    Decoding,
    caption,
    caption_batch,
    caption_models,
    crop_band,
    reads_one_line,
    stream_caption,
    tokenizer_of,
    validate_decoding,
)
from core.errors import InputError
from core.images import load_image
from core.models import ModelCache, get_cache, load_model
from core.registry import REGISTRY, get_spec
from core.settings import get_settings
from core.tiny.text import CORPUS, tiny_gpt2_tokenizer, tiny_roberta_tokenizer, train_byte_level_bpe

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CAPTION_KEYS = ["vit-gpt2", "trocr-base-handwritten", "trocr-base-printed"]
ISSUE_CHECKPOINTS = {
    "vit-gpt2": "nlpconnect/vit-gpt2-image-captioning",
    "trocr-base-handwritten": "microsoft/trocr-base-handwritten",
    "trocr-base-printed": "microsoft/trocr-base-printed",
}
GREEDY = Decoding("greedy", max_new_tokens=12)
BEAM = Decoding("beam", max_new_tokens=12, num_beams=4, n_best=3)
SAMPLING = Decoding("sampling", max_new_tokens=12, temperature=0.9, top_p=0.95, seed=1234)


@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    names = ["chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg", "text-line.png"]
    return {name.split(".")[0]: load_image(ASSETS / name) for name in names}


def reference(key: str, image: Image.Image, decoding: Decoding) -> tuple[list[str], list[float] | None]:
    """What `model.generate` + `tokenizer.batch_decode` give when called directly with the same settings."""
    loaded, _ = get_cache().get(key)
    pixel_values = loaded.processor(images=image, return_tensors="pt").pixel_values
    kwargs: dict[str, Any] = {"max_new_tokens": decoding.max_new_tokens, "return_dict_in_generate": True}
    if decoding.mode == "beam":
        kwargs |= {"num_beams": decoding.num_beams, "num_return_sequences": decoding.n_best, "output_scores": True}
    elif decoding.mode == "sampling":
        kwargs |= {"do_sample": True, "temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
        torch.manual_seed(decoding.seed)
    with torch.inference_mode():
        output = loaded.model.generate(pixel_values=pixel_values, **kwargs)
    texts = [t.strip() for t in tokenizer_of(loaded).batch_decode(output.sequences, skip_special_tokens=True)]
    scores = output.sequences_scores.tolist() if decoding.mode == "beam" else None
    return texts, scores


# --- registry entries and tiny models --------------------------------------------------------------


def test_caption_models_are_the_issue_checkpoints() -> None:
    assert [s.key for s in caption_models()] == CAPTION_KEYS
    for key, hub_id in ISSUE_CHECKPOINTS.items():
        spec = REGISTRY[key]
        assert spec.hub_id == hub_id and spec.task == "caption"
        assert spec.model_class == "VisionEncoderDecoderModel"
    assert REGISTRY["vit-gpt2"].processor_class == "AutoImageProcessor"
    assert REGISTRY["vit-gpt2"].tokenizer_class == "AutoTokenizer"
    assert REGISTRY["trocr-base-handwritten"].processor_class == "TrOCRProcessor"
    assert REGISTRY["trocr-base-handwritten"].tokenizer_class is None  # the processor carries it
    assert [reads_one_line(key) for key in CAPTION_KEYS] == [False, True, True]
    with pytest.raises(InputError, match="Unknown model 'beit-base-224'"):
        reads_one_line("beit-base-224")


@pytest.mark.parametrize(
    ("key", "size", "tokenizer_class", "start", "pad", "eos"),
    [
        ("vit-gpt2", 224, transformers.GPT2Tokenizer, "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"),
        ("trocr-base-handwritten", 384, transformers.RobertaTokenizer, "</s>", "<pad>", "</s>"),
    ],
)
def test_tiny_model_saves_and_reloads_like_a_real_checkpoint(
    key: str,
    size: int,
    tokenizer_class: type,
    start: str,
    pad: str,
    eos: str,
    fresh_settings: pytest.MonkeyPatch,
    tmp_path: Path,
    images: dict[str, Image.Image],
) -> None:
    fresh_settings.setenv("PLAYGROUND_TINY_DIR", str(tmp_path))
    spec = get_spec(key)
    loaded = load_model(spec, get_settings())
    folder = next((tmp_path).glob(f"v*/{key}"))
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert type(loaded.model) is transformers.VisionEncoderDecoderModel and loaded.model.training is False
    tokenizer = tokenizer_of(loaded)
    assert type(tokenizer) is tokenizer_class
    assert type(transformers.AutoTokenizer.from_pretrained(folder)) is tokenizer_class
    if key == "vit-gpt2":
        assert type(loaded.processor) is transformers.ViTImageProcessorPil
        assert type(loaded.model.decoder) is transformers.GPT2LMHeadModel
    else:
        assert type(loaded.processor) is transformers.TrOCRProcessor
        assert type(transformers.AutoProcessor.from_pretrained(folder)) is transformers.TrOCRProcessor
        assert type(loaded.model.decoder) is transformers.TrOCRForCausalLM
        assert loaded.model.decoder.config._attn_implementation == "eager"  # TrOCR has no SDPA
        assert loaded.model.encoder.config._attn_implementation == "sdpa"
    generation = loaded.model.generation_config
    assert tokenizer.convert_ids_to_tokens(generation.decoder_start_token_id) == start
    assert tokenizer.convert_ids_to_tokens(generation.pad_token_id) == pad
    assert tokenizer.convert_ids_to_tokens(generation.eos_token_id) == eos
    assert 500 <= len(tokenizer) <= 2000
    pixels = loaded.processor(images=images["chelsea"], return_tensors="pt").pixel_values
    assert tuple(pixels.shape) == (1, 3, size, size)
    with torch.inference_mode():
        encoded = [
            loaded.model.encoder(pixel_values=loaded.processor(images=im, return_tensors="pt").pixel_values)
            for im in (images["chelsea"], images["coffee"])
        ]
    assert (encoded[0].last_hidden_state - encoded[1].last_hidden_state).abs().max() > 1e-3


def test_tiny_tokenizers_round_trip_the_corpus() -> None:
    line = CORPUS.read_text(encoding="utf-8").splitlines()[0]
    for tokenizer in (tiny_gpt2_tokenizer(), tiny_roberta_tokenizer()):
        ids = tokenizer(line, add_special_tokens=False).input_ids
        assert len(ids) < len(line) / 2  # merges learnt: whole words, not bytes
        assert tokenizer.decode(ids) == line
    roberta = tiny_roberta_tokenizer()
    assert roberta.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert train_byte_level_bpe(("<s>",)) == train_byte_level_bpe(("<s>",))  # deterministic


# --- parity with model.generate + batch_decode -----------------------------------------------------


@pytest.mark.parametrize("key", CAPTION_KEYS)
def test_greedy_parity(key: str, images: dict[str, Image.Image]) -> None:
    for name in ("chelsea", "text-line"):
        expected, _ = reference(key, images[name], GREEDY)
        result = caption(images[name], key, GREEDY)
        assert [c.text for c in result.candidates] == expected, name
        assert result.candidates[0].score is None and result.caption == expected[0]


@pytest.mark.parametrize("key", CAPTION_KEYS)
def test_beam_parity_n_best_order_and_scores(key: str, images: dict[str, Image.Image]) -> None:
    expected, scores = reference(key, images["coffee"], BEAM)
    result = caption(images["coffee"], key, BEAM)
    assert len(result.candidates) == BEAM.n_best == len(expected)
    assert [c.text for c in result.candidates] == expected
    assert [c.score for c in result.candidates] == pytest.approx(scores, abs=1e-5)
    ours = [c.score for c in result.candidates]
    assert ours == sorted(ours, reverse=True)
    assert result.caption == expected[0]


@pytest.mark.parametrize("key", CAPTION_KEYS)
def test_seeded_sampling_parity_and_repeatability(key: str, images: dict[str, Image.Image]) -> None:
    expected, _ = reference(key, images["astronaut"], SAMPLING)
    first = caption(images["astronaut"], key, SAMPLING)
    torch.manual_seed(999)  # the global state before the call does not matter
    second = caption(images["astronaut"], key, SAMPLING)
    assert first.caption == second.caption == expected[0]
    others = {caption(images["astronaut"], key, dataclasses.replace(SAMPLING, seed=s)).caption for s in range(4)}
    assert len(others) > 1


def test_beam_score_is_the_length_normalised_log_probability(images: dict[str, Image.Image]) -> None:
    loaded, _ = get_cache().get("vit-gpt2")
    pixel_values = loaded.processor(images=images["chelsea"], return_tensors="pt").pixel_values
    decoding = Decoding("beam", max_new_tokens=8, num_beams=3, n_best=3)
    with torch.inference_mode():
        output = loaded.model.generate(pixel_values=pixel_values, **decoding.generate_kwargs())
        transition = loaded.model.compute_transition_scores(output.sequences, output.scores, output.beam_indices)
    lengths = (transition < 0).sum(dim=1)
    result = caption(images["chelsea"], "vit-gpt2", decoding)
    assert [c.score for c in result.candidates] == pytest.approx((transition.sum(1) / lengths).tolist(), abs=1e-4)


def test_generate_kwargs_per_mode() -> None:
    """Each mode's own settings, over the neutral value of every other setting that changes the output."""
    neutral = {"no_repeat_ngram_size": 0, "length_penalty": 1.0, "repetition_penalty": 1.0, "early_stopping": False}
    assert (
        GREEDY.generate_kwargs().items()
        >= {
            "max_new_tokens": 12,
            "return_dict_in_generate": True,
            "do_sample": False,
            "num_beams": 1,
            **neutral,
        }.items()
    )
    assert "temperature" not in GREEDY.generate_kwargs()
    assert BEAM.generate_kwargs()["num_return_sequences"] == 3
    assert BEAM.generate_kwargs(batch=True)["num_return_sequences"] == 1
    assert (
        SAMPLING.generate_kwargs().items()
        >= {
            "max_new_tokens": 12,
            "return_dict_in_generate": True,
            "do_sample": True,
            "num_beams": 1,
            "temperature": 0.9,
            "top_p": 0.95,
            "top_k": 0,
            **neutral,
        }.items()
    )


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["vit-gpt2", "trocr-base-printed"])
def test_batch_equals_one_by_one_greedy(key: str, images: dict[str, Image.Image]) -> None:
    batch = list(images.values())
    result = caption_batch(batch, key, GREEDY)
    assert [c.text for c in result.captions] == [caption(image, key, GREEDY).caption for image in batch]
    assert len({c.text for c in result.captions}) > 1
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["captions", "model", "model_name", "hub_id", "mode", "timings_ms", "device", "generation"]


def test_batch_beam_keeps_the_best_beam(images: dict[str, Image.Image]) -> None:
    batch = [images["chelsea"], images["coffee"]]
    result = caption_batch(batch, "vit-gpt2", BEAM)
    for image, got in zip(batch, result.captions, strict=True):
        alone = caption(image, "vit-gpt2", dataclasses.replace(BEAM, n_best=1)).candidates[0]
        assert got.text == alone.text
        assert got.score == pytest.approx(alone.score, abs=1e-5)


def test_batch_limits(images: dict[str, Image.Image]) -> None:
    with pytest.raises(InputError, match="at least one image"):
        caption_batch([], "vit-gpt2")
    with pytest.raises(InputError, match=f"at most {MAX_BATCH_IMAGES} images at once, not 17"):
        caption_batch([images["chelsea"]] * 17, "vit-gpt2")
    with pytest.raises(InputError, match="Unknown model"):
        caption_batch([images["chelsea"]], "beit-base-224")


# --- streaming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("decoding", [dataclasses.replace(GREEDY, max_new_tokens=24), SAMPLING])
@pytest.mark.parametrize("key", ["vit-gpt2", "trocr-base-handwritten"])
def test_stream_ends_equal_to_the_caption(key: str, decoding: Decoding, images: dict[str, Image.Image]) -> None:
    parts = list(stream_caption(images["chelsea"], key, decoding))
    final = caption(images["chelsea"], key, decoding)
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert parts[-1].caption == final.caption
    assert parts[-1].candidates == final.candidates
    texts = [p.caption for p in parts]
    if final.caption.count(" ") >= 2:
        assert len(parts) >= 3  # word by word, not all at once
    for shorter, longer in itertools.pairwise(texts):
        assert longer.startswith(shorter)


def test_stream_refuses_beam_search_and_stops_when_closed(images: dict[str, Image.Image]) -> None:
    with pytest.raises(InputError, match="cannot stream"):
        next(stream_caption(images["chelsea"], "vit-gpt2", BEAM))
    stream = stream_caption(images["chelsea"], "vit-gpt2", dataclasses.replace(GREEDY, max_new_tokens=64))
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while any(t.name.startswith("caption-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name.startswith("caption-") for t in threading.enumerate())


def test_stream_reports_load_errors(images: dict[str, Image.Image]) -> None:
    def broken(spec: Any) -> Any:
        raise InputError("no such model here")

    with pytest.raises(InputError, match="no such model here"):
        next(stream_caption(images["chelsea"], "vit-gpt2", GREEDY, cache=ModelCache(10**9, loader=broken)))


def test_concurrent_seeded_sampling_does_not_interleave(images: dict[str, Image.Image]) -> None:
    seeds = [3, 4, 5, 6]
    expected = {s: caption(images["coffee"], "vit-gpt2", dataclasses.replace(SAMPLING, seed=s)).caption for s in seeds}
    got: dict[int, str] = {}

    def run(seed: int) -> None:
        for _ in range(3):
            text = caption(images["coffee"], "vit-gpt2", dataclasses.replace(SAMPLING, seed=seed)).caption
            assert got.setdefault(seed, text) == text

    threads = [threading.Thread(target=run, args=(s,)) for s in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == expected


# --- results, validation, crop --------------------------------------------------------------------


def test_to_dict_and_load_time(images: dict[str, Image.Image]) -> None:
    cache = ModelCache(10**9)
    first = caption(images["chelsea"], "vit-gpt2", BEAM, cache=cache)
    data = first.to_dict()
    assert json.loads(json.dumps(data)) == data
    keys = [
        "caption",
        "candidates",
        "model",
        "model_name",
        "hub_id",
        "mode",
        "timings_ms",
        "device",
        "generation",
        "done",
    ]
    assert list(data) == keys
    assert data["candidates"] == [{"text": c.text, "score": c.score} for c in first.candidates]
    assert data["caption"] == first.candidates[0].text
    assert data["model"] == "vit-gpt2" and data["hub_id"] == ISSUE_CHECKPOINTS["vit-gpt2"]
    assert data["mode"] == "beam" and data["done"] is True and data["device"] == "cpu"
    assert data["timings_ms"]["load"] > 0 and data["timings_ms"]["generate"] > 0
    assert caption(images["chelsea"], "vit-gpt2", BEAM, cache=cache).load_ms is None
    assert cache.loads == {"vit-gpt2": 1}
    assert Candidate("x").score is None


def test_validate_decoding_accepts_the_defaults_and_slider_floats() -> None:
    assert validate_decoding() == Decoding()
    assert validate_decoding("beam", 64.0, 8.0, 8, 2, 1, 2**31 - 1) == Decoding("beam", 64, 8, 8, 2.0, 1.0, 2**31 - 1)
    assert isinstance(validate_decoding(max_new_tokens=5.0).max_new_tokens, int)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "contrastive"}, "Unknown decoding 'contrastive'. Choose one of: greedy, beam, sampling"),
        ({"max_new_tokens": 0}, "Max new tokens must be from 1 to 64, not 0"),
        ({"max_new_tokens": 65}, "Max new tokens must be from 1 to 64, not 65"),
        ({"max_new_tokens": 2.5}, "Max new tokens must be a whole number from 1 to 64"),
        ({"max_new_tokens": True}, "Max new tokens must be a whole number"),
        ({"max_new_tokens": "20"}, "Max new tokens must be a whole number"),
        ({"num_beams": 9}, "Number of beams must be from 1 to 8, not 9"),
        ({"num_beams": 2, "n_best": 3}, "Beam search with 2 beams can return at most 2 captions, not 3"),
        ({"n_best": 0}, r"Number of captions \(n-best\) must be from 1 to 8, not 0"),
        ({"temperature": 0}, "Temperature must be above 0 and at most 2, not 0"),
        ({"temperature": 2.5}, "Temperature must be above 0 and at most 2, not 2.5"),
        ({"temperature": float("nan")}, "Temperature must be a number above 0 and at most 2"),
        ({"top_p": 0}, "Top-p must be above 0 and at most 1, not 0"),
        ({"top_p": 1.01}, "Top-p must be above 0 and at most 1"),
        ({"seed": -1}, "Seed must be from 0 to 2147483647, not -1"),
        ({"seed": None}, "Seed must be a whole number"),
    ],
)
def test_validate_decoding_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=f"^{message}"):
        validate_decoding(**kwargs)


def test_unknown_model_is_an_input_error(images: dict[str, Image.Image]) -> None:
    with pytest.raises(InputError, match="Unknown model 'nope'. Choose one of: " + ", ".join(CAPTION_KEYS)):
        caption(images["chelsea"], "nope")
    with pytest.raises(InputError, match="Unknown model 'levit-128S'"):
        caption(images["chelsea"], "levit-128S")


def test_crop_band() -> None:
    image = Image.new("RGB", (40, 200))
    for y in range(200):
        image.putpixel((0, y), (y, 0, 0))
    band = crop_band(image, 25, 50)
    assert band.size == (40, 50)
    assert band.getpixel((0, 0)) == (50, 0, 0) and band.getpixel((0, 49)) == (99, 0, 0)
    assert crop_band(image, 0, 100).size == (40, 200)
    assert crop_band(image, 99.9, 100).size == (40, 1)
    with pytest.raises(InputError, match="bottom of the line must be below its top"):
        crop_band(image, 50, 50)
    with pytest.raises(InputError, match=r"Top of the line \(%\) must be from 0 to 100"):
        crop_band(image, -1, 50)
    with pytest.raises(InputError, match=r"Bottom of the line \(%\) must be a number from 0 to 100"):
        crop_band(image, 0, float("nan"))
