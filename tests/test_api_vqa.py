"""The Quick answers endpoints through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from core.images import load_image
from core.vqa import ask

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTO = ASSETS / "chelsea.jpg"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_endpoints_are_named_with_defaults(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    vqa = endpoints["/vqa"]["parameters"]
    assert [p["parameter_name"] for p in vqa] == ["image", "question", "top_k"]
    assert vqa[2]["parameter_has_default"] and vqa[2]["parameter_default"] == 5
    assert [p["parameter_name"] for p in endpoints["/detect_regions"]["parameters"]] == ["image"]


def test_vqa_answers_and_a_second_question_uses_the_cached_regions(client: Client) -> None:
    expected = ask(load_image(PHOTO), "What animal is this?", 3).to_dict()  # same process: fills the cache
    result = client.predict(handle_file(str(PHOTO)), "What animal is this?", 3, api_name="/vqa")
    assert result["answers"] == expected["answers"] and len(result["answers"]) == 3
    assert result["regions"] == expected["regions"] and 1 <= len(result["regions"]) <= 36
    assert set(result["regions"][0]) == {
        "box",
        "object",
        "attribute",
        "score",
        "attribute_score",
        "object_id",
        "attribute_id",
    }
    assert result["regions_from_cache"] is True and result["timings_ms"]["detect"] is None
    assert result["timings_ms"]["answer"] > 0
    assert result["models"] == {"detector": "unc-nlp/frcnn-vg-finetuned", "vqa": "uclanlp/visualbert-vqa"}
    default_k = client.predict(handle_file(str(PHOTO)), "Is it sleeping?", api_name="/vqa")
    assert len(default_k["answers"]) == 5
    regions = client.predict(handle_file(str(PHOTO)), api_name="/detect_regions")
    assert regions["regions"] == expected["regions"] and regions["regions_from_cache"] is True
    assert regions["image_size"] == [451, 300] and regions["score_threshold"] == 0.2


def test_bad_requests_get_clear_messages_and_the_next_one_works(client: Client, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="Type a question about the photo"):
        client.predict(handle_file(str(PHOTO)), "  ", 3, api_name="/vqa")
    with pytest.raises(Exception, match="Top-k must be|greater than maximum value 20"):
        client.predict(handle_file(str(PHOTO)), "What is it?", 50, api_name="/vqa")
    with pytest.raises(Exception, match="limit is"):
        client.predict(handle_file(str(PHOTO)), "why " * 1000, 3, api_name="/vqa")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")
    with pytest.raises(Exception, match="not an image in a supported format"):
        client.predict(handle_file(str(not_an_image)), "What is it?", 3, api_name="/vqa")
    with pytest.raises(Exception, match="No image was given|not an image"):
        client.predict(None, api_name="/detect_regions")
    assert client.predict(handle_file(str(PHOTO)), "What is it?", 1, api_name="/vqa")["answers"]
