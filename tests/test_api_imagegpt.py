"""/imagegpt_sample and /imagegpt_complete through gradio_client against the app in tiny mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from core.imagegpt import SIDE, SamplingOptions, complete, sample
from core.images import load_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def _pixels(gallery: list[dict]) -> list[list]:
    return [np.asarray(Image.open(item["image"]).convert("RGB")).tolist() for item in gallery]


def test_sample_endpoint_equals_core_for_the_same_seed(client: Client) -> None:
    gallery, data = client.predict("imagegpt-small", 2, 1.0, 0, 1.0, 11, api_name="/imagegpt_sample")
    expected = sample("imagegpt-small", SamplingOptions(num_images=2, seed=11))
    assert data["rows_done"] == SIDE and data["num_images"] == 2
    assert data["tokens"] == expected.tokens.tolist()
    assert _pixels(gallery) == [np.asarray(image).tolist() for image in expected.images]
    assert all(Image.open(item["image"]).size == (32, 32) for item in gallery)


def test_complete_endpoint_keeps_the_top_rows(client: Client) -> None:
    steps, completions, data = client.predict(
        handle_file(str(ASSETS / "chelsea.jpg")), "imagegpt-small", 20, 3, 1.0, 0, 1.0, 4, api_name="/imagegpt_complete"
    )
    expected = complete(load_image(ASSETS / "chelsea.jpg"), "imagegpt-small", 20, SamplingOptions(num_images=3, seed=4))
    assert data["kept_rows"] == 20 and len(completions) == 3 and len(steps) == 3
    assert data["tokens"] == expected.tokens.tolist()
    quantised = np.asarray(Image.open(steps[1]["image"]).convert("RGB"))
    for pixels in _pixels(completions):
        assert np.array_equal(np.asarray(pixels)[:20], quantised[:20])


def test_bad_values_get_clear_messages(client: Client) -> None:
    with pytest.raises(Exception, match="less than minimum value 1"):
        client.predict(handle_file(str(ASSETS / "coffee.jpg")), "imagegpt-small", 0, 1, api_name="/imagegpt_complete")
