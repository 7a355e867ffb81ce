"""The Inside tab's two endpoints through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PHOTO = str(ROOT / "assets" / "chelsea.jpg")


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_the_endpoints_are_named_and_every_parameter_but_the_image_has_a_default(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    expected = {
        "/masked_image": ["image", "mask_kind", "share", "seed", "patches"],
        "/attention": ["image", "model", "layer", "head", "method", "latents", "opacity"],
    }
    for name, parameters in expected.items():
        info = endpoints[name]["parameters"]
        assert [p["parameter_name"] for p in info] == parameters
        assert all(p["parameter_has_default"] for p in info[1:])
    assert len(endpoints["/attention"]["returns"]) == 4  # overlay, heat map, small maps, JSON


def test_masked_image_with_defaults_returns_pictures_and_the_vaes_verdict(client: Client) -> None:
    pictures, data = client.predict(handle_file(PHOTO), api_name="/masked_image")
    assert data["mask_kind"] == "blockwise" and data["seed"] == 0 and 60 <= data["num_masked"] <= 78
    assert data["vae"]["present"] and 0 <= data["vae"]["top1_accuracy"] <= data["vae"]["top5_accuracy"] <= 1
    assert [p["caption"] for p in pictures] == data["images"] and len(pictures) == 4
    assert all(Image.open(p["image"]).size[0] > 200 for p in pictures)
    again = client.predict(handle_file(PHOTO), api_name="/masked_image")[1]
    assert again["mask"] == data["mask"] and again["predictions"] == data["predictions"]


def test_masked_image_with_chosen_patches(client: Client) -> None:
    _, data = client.predict(handle_file(PHOTO), "patches", 0.4, 0, "0, 1, 195", api_name="/masked_image")
    assert data["masked_patches"] == [0, 1, 195] and data["seed"] is None
    with pytest.raises(Exception, match="Pick at least one patch"):
        client.predict(handle_file(PHOTO), "patches", 0.4, 0, "", api_name="/masked_image")
    with pytest.raises(Exception, match="from 0 to 195, not 196"):
        client.predict(handle_file(PHOTO), "patches", 0.4, 0, "196", api_name="/masked_image")


def test_attention_of_each_family(client: Client) -> None:
    overlay, heat, small, data = client.predict(handle_file(PHOTO), api_name="/attention")
    assert data["model"] == "beit-base-224" and data["method"] == "last layer" and data["head"] == "mean"
    assert data["grid"] == [14, 14] and abs(data["map_sum"] + data["class_token_share"] - 1) < 1e-4
    assert Image.open(overlay).size == (448, 448) and Image.open(heat).size[0] > 300 and Path(small).exists()

    data = client.predict(
        handle_file(PHOTO), "perceiver-conv", 0, "mean", "classifier", "", 0.7, api_name="/attention"
    )[3]
    assert data["family"] == "Perceiver" and data["grid"] == data["input_grid"] and abs(data["map_sum"] - 1) < 1e-4

    data = client.predict(handle_file(PHOTO), "levit-128S", 2, "1", "last layer", api_name="/attention")[3]
    assert data["layer"] == 2 and data["head"] == 1 and data["stage"] == 1 and data["grid"] == [14, 14]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["levit-128S", 0, "mean", "rollout"], "does not apply to LeViT-128S"),
        (["beit-base-224", 0, "99", "last layer"], "Head must be from 1 to 2"),
        (["beit-base-224", 20, "mean", "last layer"], "has 2 attention layers"),
        (["perceiver-conv", 0, "mean", "latents", "5000"], "A latent must be from 0 to"),
        (["not-a-model", 0, "mean", "last layer"], "Unknown model|not in the list of choices"),
    ],
)
def test_attention_refuses_values_that_do_not_fit(client: Client, arguments: list[object], message: str) -> None:
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(PHOTO), *arguments, api_name="/attention")
