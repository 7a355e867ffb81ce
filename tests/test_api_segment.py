"""/segment through gradio_client against the app in tiny mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_segment_endpoint_returns_json_and_downloads(client: Client) -> None:
    data, label_png, segments_json = client.predict(
        handle_file(str(ASSETS / "coffee.jpg")),
        "beit-base-ade-640",
        "semantic",
        api_name="/segment",
    )
    assert data["model"] == "beit-base-ade-640" and data["mode"] == "semantic"
    assert data["image_size"] == [600, 400]
    ids = np.array(Image.open(label_png))
    assert ids.shape == (400, 600)
    assert sorted(np.unique(ids).tolist()) == [s["id"] for s in data["segments"]]
    assert json.loads(Path(segments_json).read_text()) == data
    assert sum(s["area"] for s in data["segments"]) == 600 * 400


def test_thresholds_reach_the_model(client: Client) -> None:
    image = handle_file(str(ASSETS / "chelsea.jpg"))
    model = "mask2former-swin-small-coco-panoptic"
    loose, *_ = client.predict(image, model, "panoptic", 0.0, 0.01, 0.0, False, api_name="/segment")
    strict, *_ = client.predict(image, model, "panoptic", 0.0, 0.01, 0.8, False, api_name="/segment")
    assert len(loose["segments"]) > len(strict["segments"])


def test_unsupported_mode_is_a_clear_error(client: Client) -> None:
    with pytest.raises(Exception, match="does semantic segmentation, not 'instance'"):
        client.predict(handle_file(str(ASSETS / "coffee.jpg")), "beit-base-ade-640", "instance", api_name="/segment")


def test_instance_mode_through_the_api(client: Client) -> None:
    data, label_png, _ = client.predict(
        handle_file(str(ASSETS / "chelsea.jpg")),
        "mask2former-swin-small-coco-instance",
        "instance",
        0.0,
        api_name="/segment",
    )
    assert data["mode"] == "instance" and data["segments"]
    assert all(s["score"] is not None and s["label"] for s in data["segments"])
    ids = np.array(Image.open(label_png))
    assert set(np.unique(ids).tolist()) <= {0} | {s["id"] for s in data["segments"]}
