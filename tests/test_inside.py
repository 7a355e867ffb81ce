"""The Inside tab's core: BEiT's masked-patch predictions (parity with a direct model call, with and without
the VAE) and the attention maps (rollout's formula, sums, grids, the eager switch, LeViT's hooks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core import attention as core_attention
from core import masked_image as core_masked
from core.errors import InputError
from core.images import load_image
from core.masking import blockwise_mask, patches_of
from core.models import get_cache, load_for
from core.safe_pickle import UnsafePickleError

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def photo() -> object:
    return load_image(ASSETS / "chelsea.jpg")


# --- masked patches ----------------------------------------------------------------------------------


def test_masked_position_logits_equal_a_direct_model_call(photo: object) -> None:
    loaded, _ = load_for(core_masked.MODEL_KEY, core_masked.TASK, get_cache())
    assert type(loaded.model).__name__ == "BeitForMaskedImageModeling"
    grid = core_masked.grid_of(loaded.model.config)
    assert grid == core_masked.GRID == (14, 14)
    mask, _ = blockwise_mask(grid, 75, seed=0)
    pixel_values = core_masked.preprocess(loaded, photo)
    assert pixel_values.shape == (1, 3, 224, 224)
    ours = core_masked.forward(loaded, pixel_values, mask)

    positions = torch.from_numpy(mask.reshape(1, -1))
    with torch.no_grad():
        direct = loaded.model(pixel_values=pixel_values, bool_masked_pos=positions).logits
    assert direct.shape == (1, 196, 8192)
    assert torch.equal(ours, direct[positions])

    predictions = core_masked.postprocess(ours, patches_of(mask))
    probabilities = direct[positions].softmax(-1)
    assert np.array_equal(predictions.tokens, probabilities.argmax(-1).numpy())
    assert np.allclose(predictions.confidence, probabilities.max(-1).values.numpy(), atol=1e-6)
    expected_entropy = -(probabilities * probabilities.log2()).sum(-1).numpy()
    assert np.allclose(predictions.entropy_bits, expected_entropy, atol=1e-4)
    assert (predictions.entropy_bits >= 0).all() and (predictions.entropy_bits <= math.log2(8192) + 1e-4).all()
    assert np.array_equal(predictions.top5[:, 0], predictions.tokens) and predictions.top5.shape == (
        len(mask.nonzero()[0]),
        5,
    )


def test_with_the_vae_true_tokens_accuracy_and_reconstructions(photo: object) -> None:
    result = core_masked.masked_image(photo, "patches", patches="0, 1, 14, 15, 100")
    data = result.to_dict()
    assert data["masked_patches"] == [0, 1, 14, 15, 100] and data["num_masked"] == 5 and data["seed"] is None
    assert np.array(data["mask"]).sum() == 5 and data["mask"][1][1] == 1
    vae = data["vae"]
    assert vae["present"] and vae["source"] == "tiny random weights"
    truth = np.array(vae["true_tokens"])
    assert truth.shape == (14, 14)
    right = [p["token"] == truth[p["row"], p["col"]] for p in data["predictions"]]
    assert vae["top1_accuracy"] == pytest.approx(np.mean(right), abs=1e-4)
    in_top5 = [truth[p["row"], p["col"]] in p["top5"] for p in data["predictions"]]
    assert vae["top5_accuracy"] == pytest.approx(np.mean(in_top5), abs=1e-4)
    assert all(p["correct"] == r for p, r in zip(data["predictions"], right, strict=True))
    assert data["confidence_map"][0][0] is not None and data["confidence_map"][0][2] is None
    assert sum(item["count"] for item in data["predicted_token_counts"]) == 5
    assert len(result.pictures) == 4 and "VAE: decoded true tokens" in data["images"][0]
    strip = result.pictures[0][0]
    assert strip.ndim == 3 and strip.shape[1] > 2 * strip.shape[0]  # four pictures side by side


def test_without_the_vae_the_always_shown_part_and_a_note(photo: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_masked.dalle_vae, "get_vae", lambda cache=None: (None, None))  # files absent
    result = core_masked.masked_image(photo, "random", share=0.1, seed=3)
    data = result.to_dict()
    assert data["num_masked"] == round(0.1 * 196) and data["seed"] == 3
    assert data["vae"] == {"present": False, "note": core_masked.WITHOUT_VAE}
    assert "python -m core.download --dall-e" in data["vae"]["note"]
    assert len(result.pictures) == 3  # original | masked, confidence and entropy maps, histogram
    assert "true_token" not in data["predictions"][0]

    def refused(cache: object = None) -> None:
        raise UnsafePickleError("Refused to read the file: it asks to use posix.system")

    monkeypatch.setattr(core_masked.dalle_vae, "get_vae", refused)  # files there but refused
    data = core_masked.masked_image(photo, "patches", patches="7").to_dict()
    assert data["vae"] == {"present": False, "note": "Refused to read the file: it asks to use posix.system"}


def test_the_patch_picker_maps_clicks_to_patches(photo: object) -> None:
    picture = core_masked.patch_picker(photo, [0, 195])
    assert picture.shape == (448, 448, 3)
    assert core_masked.patch_at(0, 0) == 0 and core_masked.patch_at(447, 447) == 195
    assert core_masked.patch_at(33, 31) == 1 and core_masked.patch_at(31, 33) == 14
    assert core_masked.toggle_patch([1, 2], 2) == [1] and core_masked.toggle_patch([1], 2) == [1, 2]


# --- attention: maths on known inputs --------------------------------------------------------------


def test_rollout_on_a_hand_made_stack_equals_the_formula() -> None:
    first = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    second = np.array([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    identity = np.eye(3)
    expected = (0.5 * identity + 0.5 * second) @ (0.5 * identity + 0.5 * first)
    assert np.allclose(core_attention.rollout(np.stack([first, second])), expected)
    assert np.allclose(core_attention.rollout(first[None]), 0.5 * (identity + first))
    # by hand, the class token's row after both layers: 0.5 [1, 0, 0] + 0.25 [0.25, 0.75, 0] + 0.25 [0.1, 0.15, 0.75]
    assert np.allclose(expected[0], [0.5875, 0.225, 0.1875])
    assert np.allclose(core_attention.rollout(np.stack([first, second, first])).sum(axis=1), 1)
    assert np.allclose(core_attention.rollout(np.stack([first]), residual=0.0), first)


def test_pooling_keeps_the_sum_and_parameters_are_checked() -> None:
    grid = np.random.default_rng(0).random((224, 224))
    pooled, factor = core_attention.pooled(grid)
    assert factor == 4 and pooled.shape == (56, 56) and math.isclose(pooled.sum(), grid.sum())
    assert core_attention.pooled(np.ones((55, 55)))[1] == 1
    assert core_attention.parse_layer(0, 12) == 12 and core_attention.parse_layer(3, 12) == 3
    assert core_attention.parse_head("mean", 12) is None and core_attention.parse_head("4", 12) == 4
    assert core_attention.parse_latents("3, 1 3", 16) == [3, 1] and core_attention.parse_latents("", 16) == []
    for call, message in [
        (lambda: core_attention.parse_layer(13, 12), "has 12 attention layers"),
        (lambda: core_attention.parse_head("13", 12), "Head must be from 1 to 12"),
        (lambda: core_attention.parse_head("first", 12), 'Head must be "mean" or a number'),
        (lambda: core_attention.parse_latents("16", 16), "A latent must be from 0 to 15"),
        (lambda: core_attention.parse_latents("x", 16), "Latents must be whole numbers"),
    ]:
        with pytest.raises(InputError, match=message):
            call()


# --- attention of the real model classes (tiny) -----------------------------------------------------


def test_beit_weights_come_from_eager_attention_for_the_call_only(photo: object) -> None:
    loaded, _ = load_for("beit-base-224", "classify", get_cache())
    model = loaded.model
    assert model.config._attn_implementation == "sdpa"
    pixel_values = loaded.processor(images=photo, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        sdpa_logits = model(pixel_values=pixel_values).logits
    attn = core_attention.beit_attentions(loaded, pixel_values)
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    assert attn.shape == (layers, heads, 197, 197)
    assert np.allclose(attn.sum(axis=-1), 1, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"  # switched back: Classify keeps SDPA
    with core_attention.eager_attention(model):
        assert model.config._attn_implementation == "eager"
        with torch.no_grad():
            eager_logits = model(pixel_values=pixel_values).logits
    assert torch.allclose(sdpa_logits, eager_logits, atol=1e-5)
    with pytest.raises(RuntimeError, match="boom"), core_attention.eager_attention(model):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("method", ["last layer", "rollout"])
def test_beit_maps_sum_with_the_class_tokens_share_to_one(photo: object, method: str) -> None:
    for head in ("mean", 2):
        result = core_attention.attention(photo, "beit-base-224", 0, head, method)
        data = result.to_dict()
        assert result.map.shape == (14, 14) and data["grid"] == [14, 14] and data["map_pooling"] == 1
        assert result.map.sum() + data["class_token_share"] == pytest.approx(1, abs=1e-5)
        assert len(result.small_maps) == 2 and result.view.shape == (448, 448, 3)
    first_layer = core_attention.attention(photo, "beit-base-224", 1, "mean", "rollout")
    one_layer = core_attention.attention(photo, "beit-base-224", 1, "mean", "last layer")
    # rollout through one layer: half the layer's attention, half the identity (the class token itself)
    assert np.allclose(first_layer.map, 0.5 * one_layer.map, atol=1e-6)


def test_perceiver_maps_lie_on_the_inputs_grid_and_sum_to_one(photo: object) -> None:
    loaded, _ = load_for("perceiver-conv", "classify", get_cache())
    pixel_values = loaded.processor(images=photo, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        positions = loaded.model.perceiver.input_preprocessor(pixel_values)[0].shape[1]
    side = math.isqrt(positions)  # the conv stem's grid
    classifier = core_attention.attention(photo, "perceiver-conv", 0, "mean", "classifier")
    assert classifier.map.shape == (side, side) and classifier.details["input_grid"] == [side, side]
    assert classifier.map.sum() == pytest.approx(1, abs=1e-5)
    weights = classifier.details["classifier_weights_top"]
    assert [w["weight"] for w in weights] == sorted((w["weight"] for w in weights), reverse=True)
    chosen = core_attention.attention(photo, "perceiver-conv", 0, "1", "latents", "0, 5")
    assert chosen.map.sum() == pytest.approx(1, abs=1e-5) and chosen.details["latents"] == [0, 5]
    assert [name.split(" ·")[0] for _, name in chosen.small_maps] == ["latent 0", "latent 5"]
    every = core_attention.attention(photo, "perceiver-conv", 0, "mean", "latents")
    assert every.map.sum() == pytest.approx(1, abs=1e-5)
    assert len(every.small_maps) == min(16, every.details["num_latents"])


def test_perceiver_on_raw_pixels_has_one_map_cell_per_pixel(photo: object) -> None:
    result = core_attention.attention(photo, "perceiver-learned", 0, "mean", "classifier")
    assert result.map.shape == (224, 224) and result.map.sum() == pytest.approx(1, abs=1e-5)
    data = result.to_dict()  # 224 x 224 values go into the JSON sum-pooled 4 x 4
    assert data["map_pooling"] == 4 and np.array(data["map"]).shape == (56, 56)
    assert sum(map(sum, data["map"])) == pytest.approx(1, abs=1e-3)


def test_levit_hooks_recompute_each_modules_own_attention(photo: object) -> None:
    from transformers.models.levit.modeling_levit import LevitAttention, LevitAttentionSubsample

    loaded, _ = load_for("levit-128S", "classify", get_cache())
    pixel_values = loaded.processor(images=photo, return_tensors="pt")["pixel_values"]
    checked = []

    def check(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        weights, values = core_attention.levit_weights(module, inputs[0])
        mixed = (weights @ values).transpose(1, 2).reshape(output.shape[0], output.shape[1], -1)
        assert torch.allclose(module.projection(module.activation(mixed)), output, atol=1e-5)
        checked.append(type(module).__name__)

    attention_modules = [m for m in loaded.model.modules() if isinstance(m, LevitAttention | LevitAttentionSubsample)]
    handles = [m.register_forward_hook(check) for m in attention_modules]
    try:
        with torch.no_grad():
            loaded.model(pixel_values=pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    assert {"LevitAttention", "LevitAttentionSubsample"} <= set(checked)

    layers = core_attention.levit_attentions(loaded, pixel_values)
    assert len(layers) == len(attention_modules) and [layer.stage for layer in layers] == [1, 1, 2, 2, 3]
    assert all(not m._forward_hooks for m in attention_modules)  # hooks gone after the call
    for layer in layers:
        assert np.allclose(layer.weights.sum(axis=-1), 1, atol=1e-5)
    result = core_attention.attention(photo, "levit-128S", 2, "mean", "last layer")
    assert result.map.shape == (14, 14) and result.details["subsample"] and result.details["stage"] == 1
    assert result.map.sum() == pytest.approx(1, abs=1e-5)
    assert core_attention.attention(photo, "levit-128S", 0, "mean", "last layer").map.shape == (4, 4)


def test_methods_must_fit_the_model(photo: object) -> None:
    with pytest.raises(InputError, match="does not apply to LeViT-128S. Choose one of: last layer"):
        core_attention.attention(photo, "levit-128S", 0, "mean", "rollout")
    with pytest.raises(InputError, match="Choose one of: latents, classifier"):
        core_attention.attention(photo, "perceiver-conv", 0, "mean", "last layer")
    with pytest.raises(InputError, match="Unknown model"):
        core_attention.attention(photo, "beit-base-224-pt22k", 0, "mean", "last layer")
    with pytest.raises(InputError, match="Unknown method"):
        core_attention.attention(photo, "beit-base-224", 0, "mean", "gradcam")
