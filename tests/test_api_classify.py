"""The app's API through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client import Client, handle_file

from core.models import get_cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_startup_loads_no_model(app_server: SimpleNamespace) -> None:
    assert app_server.loaded_at_start == []


def test_classify_endpoint_is_named(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert "/classify" in endpoints
    assert [p["parameter_name"] for p in endpoints["/classify"]["parameters"]] == ["image", "models", "top_k"]


def test_classify_example_image(client: Client, example_image_path: Path) -> None:
    result = client.predict(
        handle_file(str(example_image_path)), ["beit-base-224", "levit-128S"], 3, api_name="/classify"
    )
    assert list(result["predictions"]) == ["beit-base-224", "levit-128S"]
    for predictions in result["predictions"].values():
        assert len(predictions) == 3
        assert all(set(p) == {"label", "score"} and 0 <= p["score"] <= 1 for p in predictions)
        scores = [p["score"] for p in predictions]
        assert scores == sorted(scores, reverse=True)
    assert set(result["heads"]) == {"levit-128S"}
    assert result["timings_ms"]["beit-base-224"]["inference"] > 0
    assert result["summary"]
    assert {"beit-base-224", "levit-128S"} <= set(get_cache().loaded_keys())


def test_same_request_same_answer(client: Client, example_image_path: Path) -> None:
    first = client.predict(handle_file(str(example_image_path)), ["perceiver-conv"], 5, api_name="/classify")
    second = client.predict(handle_file(str(example_image_path)), ["perceiver-conv"], 5, api_name="/classify")
    assert first["predictions"] == second["predictions"]


def test_bad_upload_gets_a_clear_message_and_the_next_request_works(
    client: Client, tmp_path: Path, example_image_path: Path
) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    with pytest.raises(Exception, match="not an image in a supported format"):
        client.predict(handle_file(str(not_an_image)), ["levit-128S"], 5, api_name="/classify")

    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(example_image_path.read_bytes()[:4000])
    with pytest.raises(Exception, match="truncated or corrupted"):
        client.predict(handle_file(str(truncated)), ["levit-128S"], 5, api_name="/classify")

    result = client.predict(handle_file(str(example_image_path)), ["levit-128S"], 5, api_name="/classify")
    assert len(result["predictions"]["levit-128S"]) == 5


def test_out_of_range_values_are_refused(client: Client, example_image_path: Path) -> None:
    with pytest.raises(Exception, match="Choose at least one model"):
        client.predict(handle_file(str(example_image_path)), [], 5, api_name="/classify")
    with pytest.raises(Exception):
        client.predict(handle_file(str(example_image_path)), ["not-a-model"], 5, api_name="/classify")
    with pytest.raises(Exception, match="Top-k must be|greater than maximum value 20"):
        client.predict(handle_file(str(example_image_path)), ["levit-128S"], 500, api_name="/classify")
