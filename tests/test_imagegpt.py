"""ImageGPT: the fast sampler against generate, seeds, completion, palette round trip, streaming."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import InputError
from core.imagegpt import (
    SIDE,
    SamplingOptions,
    clusters_of,
    complete,
    complete_stream,
    int8_copy,
    quantise,
    sample,
    sample_stream,
    sampler_for,
    tokens_to_images,
)
from core.imagegpt_sampler import FastSampler, _GraphStep, _sample
from core.images import load_image
from core.models import get_cache
from core.streaming import last

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODEL = "imagegpt-small"


@pytest.fixture(scope="module")
def loaded() -> object:
    return get_cache().get(MODEL)[0]


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_greedy_fast_sampler_equals_generate_for_a_batch(loaded: object, mode: str) -> None:
    model = loaded.model
    sos = model.config.vocab_size - 1
    ours = FastSampler(model, mode).sample(3, SamplingOptions(num_images=3, top_k=1))
    with torch.inference_mode():
        reference = model.generate(
            input_ids=torch.full((3, 1), sos), max_length=model.config.n_positions + 1, do_sample=False
        )[:, 1:]
    assert ours.shape == (3, 1024)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_completion_prefill_equals_generate_greedy(loaded: object, mode: str) -> None:
    model = loaded.model
    tokens = torch.as_tensor(quantise(load_image(ASSETS / "chelsea.jpg"), loaded))
    prefix = tokens[: 30 * SIDE].repeat(2, 1)
    ours = FastSampler(model, mode).sample(2, SamplingOptions(num_images=2, top_k=1), prefix)
    start = torch.cat([torch.full((2, 1), model.config.vocab_size - 1), prefix], dim=1)
    with torch.inference_mode():
        reference = model.generate(input_ids=start, max_length=model.config.n_positions + 1, do_sample=False)[:, 1:]
    assert torch.equal(ours, reference)


def test_same_seed_same_images_other_seed_other_images() -> None:
    first = sample(MODEL, SamplingOptions(num_images=2, seed=7))
    second = sample(MODEL, SamplingOptions(num_images=2, seed=7))
    other = sample(MODEL, SamplingOptions(num_images=2, seed=8))
    assert np.array_equal(first.tokens, second.tokens)
    assert not np.array_equal(first.tokens, other.tokens)
    assert [np.asarray(i).tolist() for i in first.images] == [np.asarray(i).tolist() for i in second.images]
    assert first.images[0].size == (32, 32) and first.images[0].mode == "RGB"


def test_top_k_and_top_p_restrict_the_choice() -> None:
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    generator = torch.Generator().manual_seed(0)
    picks = _sample(logits, SamplingOptions(top_k=2), generator)
    assert set(picks.tolist()) == {0, 1}
    probabilities = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().repeat(2000, 1)
    picks = _sample(probabilities, SamplingOptions(top_p=0.6), generator)
    assert set(picks.tolist()) == {0, 1}
    picks = _sample(probabilities, SamplingOptions(top_p=0.45), generator)
    assert set(picks.tolist()) == {0}
    assert _sample(logits[:3], SamplingOptions(top_k=1), generator).tolist() == [0, 0, 0]
    cold = _sample(logits, SamplingOptions(temperature=0.05), generator)
    assert (cold == 0).float().mean() > 0.99


def test_completion_keeps_the_kept_rows_bit_identical(loaded: object) -> None:
    photo = load_image(ASSETS / "astronaut.jpg")
    result = complete(photo, MODEL, 12, SamplingOptions(num_images=3, seed=1))
    original = quantise(photo, loaded)
    assert result.tokens.shape == (3, 1024)
    assert (result.tokens[:, : 12 * SIDE] == original[: 12 * SIDE]).all()
    assert not (result.tokens[:, 12 * SIDE :] == original[12 * SIDE :]).all()
    for image in result.images:
        assert np.array_equal(np.asarray(image)[:12], np.asarray(result.quantised)[:12])


def test_tokens_to_pixels_to_tokens_round_trips(loaded: object) -> None:
    tokens = np.random.default_rng(0).integers(0, 512, size=(2, 1024))
    images = tokens_to_images(tokens, clusters_of(loaded))
    assert [quantise(image, loaded).tolist() for image in images] == tokens.tolist()


def test_tiny_palette_is_made_of_the_example_photos_colours(loaded: object) -> None:
    clusters = clusters_of(loaded)
    assert clusters.shape == (512, 3)
    assert clusters.min() >= -1.0 and clusters.max() <= 1.0
    assert len({tuple(c) for c in clusters}) == 512


def test_stream_yields_every_row_and_ends_with_the_returned_images() -> None:
    options = SamplingOptions(num_images=2, seed=3)
    updates = list(sample_stream(MODEL, options))
    assert [u.tokens.shape[1] for u in updates] == [SIDE * (row + 1) for row in range(SIDE)]
    final = sample(MODEL, options)
    assert np.array_equal(updates[-1].tokens, final.tokens)
    assert [np.asarray(i).tolist() for i in updates[-1].images] == [np.asarray(i).tolist() for i in final.images]
    assert np.asarray(updates[0].images[0])[1:].tolist() == np.full((31, 32, 3), 128).tolist()


def test_completion_stream_starts_after_the_kept_rows() -> None:
    updates = list(complete_stream(load_image(ASSETS / "coffee.jpg"), MODEL, 30, SamplingOptions(num_images=1)))
    assert [u.tokens.shape[1] for u in updates] == [31 * SIDE, 32 * SIDE]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SamplingOptions(num_images=0), "number of images must be from 1 to 16, not 0"),
        (SamplingOptions(num_images=17), "from 1 to 16"),
        (SamplingOptions(temperature=0), "Temperature must be from 0.05 to 5, not 0"),
        (SamplingOptions(top_k=2.5), "Top-k must be a whole number"),
        (SamplingOptions(top_p=float("nan")), "Top-p must be a number"),
        (SamplingOptions(seed=-1), "Seed must be from 0 to 2147483647, not -1"),
        (SamplingOptions(weights="int4"), "Unknown weights 'int4'. Choose one of: float32, int8"),
    ],
)
def test_bad_options_are_refused(options: SamplingOptions, message: str) -> None:
    with pytest.raises(InputError, match=message):
        sample(MODEL, options)


def test_bad_completion_requests_are_refused() -> None:
    photo = load_image(ASSETS / "coffee.jpg")
    with pytest.raises(InputError, match="Rows to keep must be from 1 to 31"):
        complete(photo, MODEL, 32, SamplingOptions(num_images=1))
    with pytest.raises(InputError, match="Unknown model"):
        sample("levit-128S", SamplingOptions(num_images=1))


def test_static_steps_sample_the_same_tokens_as_dynamic_ones(loaded: object) -> None:
    """The static step (what a CUDA graph records) reads the whole zero-filled cache under a mask."""
    options = SamplingOptions(num_images=3, top_k=40, top_p=0.9, temperature=1.3, seed=11)
    prefix = torch.as_tensor(quantise(load_image(ASSETS / "coffee.jpg"), loaded))[: 5 * SIDE].repeat(3, 1)
    for start in (None, prefix):
        dynamic = FastSampler(loaded.model, "dynamic").sample(3, options, start)
        assert torch.equal(FastSampler(loaded.model, "static").sample(3, options, start), dynamic)


def _eager_replay(step: _GraphStep) -> object:
    """Stands in for recording a CUDA graph on this CPU machine: "replaying" runs the static step on the
    graph's own input buffers and cache, so the buffer handling around the graph is what is tested."""
    return step._run


def test_graph_steps_match_dynamic_ones_for_interleaved_requests(
    loaded: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_GraphStep, "_record", _eager_replay)
    options = SamplingOptions(num_images=2, top_k=20, seed=4)
    dynamic = FastSampler(loaded.model, "dynamic")
    sampler = FastSampler(loaded.model, "cuda-graph")
    expected = dynamic.sample(2, options)
    prefix = expected[:, : 7 * SIDE]
    first, second = sampler.stream(2, options), sampler.stream(2, options, prefix)
    partial = next(first)  # two requests at once, each with its own graph and cache
    assert torch.equal(last(second), dynamic.sample(2, options, prefix))
    assert torch.equal(partial, expected[:, :SIDE]) and torch.equal(last(first), expected)
    assert torch.equal(sampler.sample(3, options), dynamic.sample(3, options))
    assert sampler.graph_error is None


def test_samplers_are_dropped_with_their_loaded_model(loaded: object) -> None:
    copy = dataclasses.replace(loaded)
    sampler = weakref.ref(sampler_for(copy))
    assert sampler_for(copy) is sampler() and sampler_for(loaded) is not sampler()
    del copy
    gc.collect()
    assert sampler() is None


def test_a_graph_that_fails_to_record_or_replays_wrongly_is_not_used(
    loaded: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = SamplingOptions(num_images=2, seed=1)
    expected = FastSampler(loaded.model, "dynamic").sample(2, options)
    cpu = FastSampler(loaded.model, "cuda-graph")  # this machine has no CUDA: recording fails
    assert torch.equal(cpu.sample(2, options), expected)
    assert "CUDA" in cpu.graph_error

    def record_once(step: _GraphStep) -> object:
        step._run()
        return lambda: None  # later replays leave the first logits: the position buffer is not read

    monkeypatch.setattr(_GraphStep, "_record", record_once)
    wrong = FastSampler(loaded.model, "cuda-graph")
    assert torch.equal(wrong.sample(2, options), expected)
    assert "differ from the eager step's at position 1" in wrong.graph_error
    auto = FastSampler(loaded.model, "auto")
    auto.graph_error = wrong.graph_error
    assert auto.resolved_mode(torch.device("cuda")) == "dynamic"


def test_auto_mode_records_graphs_only_on_cuda_and_when_allowed(loaded: object, fresh_settings: object) -> None:
    sampler = FastSampler(loaded.model)
    assert sampler.resolved_mode(torch.device("cpu")) == "dynamic"
    assert sampler.resolved_mode(torch.device("cuda")) == "cuda-graph"
    fresh_settings.setenv("PLAYGROUND_IMAGEGPT_CUDA_GRAPHS", "0")
    from core.settings import reset_settings

    reset_settings()
    assert sampler.resolved_mode(torch.device("cuda")) == "dynamic"
    with pytest.raises(ValueError, match="mode must be one of"):
        FastSampler(loaded.model, "compiled")


# --- int8 weights (the "fast" option on CPUs) ------------------------------------------------------


def test_int8_samples_are_valid_repeatable_and_say_their_weights() -> None:
    options = SamplingOptions(num_images=2, seed=5, weights="int8")
    first = sample(MODEL, options)
    assert first.weights == "int8" and first.to_dict()["weights"] == "int8"
    assert first.tokens.shape == (2, 1024) and first.tokens.min() >= 0 and first.tokens.max() < 512
    assert np.array_equal(sample(MODEL, options).tokens, first.tokens)
    assert sample(MODEL, dataclasses.replace(options, weights="float32")).weights == "float32"


def test_int8_copy_swaps_the_transformer_layers_and_shares_the_rest(loaded: object) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    twin = int8_copy(loaded.model)
    layer = twin.transformer.h[0]
    assert all(isinstance(m, DynamicLinear) for m in (layer.attn.c_attn, layer.attn.c_proj, layer.mlp.c_fc))
    assert twin.transformer.wte.weight is loaded.model.transformer.wte.weight  # shared, not copied
    assert twin.lm_head.weight is loaded.model.lm_head.weight
    assert type(loaded.model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"  # the original is untouched
    assert sampler_for(loaded, "int8").model is not loaded.model
    assert sampler_for(loaded, "int8") is sampler_for(loaded, "int8")


def test_int8_predicts_nearly_the_same_next_colours_as_float32(loaded: object) -> None:
    """Teacher-forced: the palette tokens of a photo, and at each of them the most likely next colour."""
    model = loaded.model
    tokens = torch.as_tensor(quantise(load_image(ASSETS / "chelsea.jpg"), loaded))
    ids = torch.cat([torch.tensor([model.config.vocab_size - 1]), tokens[:-1]])[None]  # start token, 1023 colours
    with torch.inference_mode():
        exact = model(ids).logits[0, :, :-1].argmax(-1)
        fast = int8_copy(model)(ids).logits[0, :, :-1].argmax(-1)
    assert (exact == fast).float().mean() > 0.9
