"""The zero-shot endpoints through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from core import zero_shot as zs
from core.images import load_image
from tabs.zero_shot import DEFAULT_LABELS

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PHOTOS = [ASSETS / name for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")]


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_endpoints_are_named_with_defaults_for_every_text_and_number(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    parameters = {name: endpoints[name]["parameters"] for name in ("/zero_shot", "/search_images", "/rank_captions")}
    assert [p["parameter_name"] for p in parameters["/zero_shot"]] == ["image", "labels", "template"]
    assert [p["parameter_name"] for p in parameters["/search_images"]] == ["images", "query", "top_k"]
    assert [p["parameter_name"] for p in parameters["/rank_captions"]] == ["image", "captions"]
    defaults = {p["parameter_name"]: p["parameter_default"] for ps in parameters.values() for p in ps[1:]}
    assert defaults["template"] == "una foto di {}" and defaults["labels"].startswith("un gatto\n")
    assert defaults["query"] == "un gatto" and defaults["top_k"] == 4


def test_zero_shot_answers_as_the_core_does(client: Client) -> None:
    result = client.predict(handle_file(str(PHOTOS[0])), api_name="/zero_shot")
    labels = [score["label"] for score in result["labels"]]
    assert sorted(labels) == sorted(DEFAULT_LABELS.splitlines())
    assert sum(score["probability"] for score in result["labels"]) == pytest.approx(1.0, abs=1e-5)
    assert result["template"] == "una foto di {}" and result["labels"][0]["prompt"].startswith("una foto di ")
    assert result["logit_scale"] == pytest.approx(2.71828, abs=1e-4)
    assert set(result["timings_ms"]) == {"preprocess", "image_encoder", "text_encoder", "load"}
    assert result["model"] == "clip-italian" and result["hub_id"] == "clip-italian/clip-italian"

    expected = zs.zero_shot(load_image(PHOTOS[0]), DEFAULT_LABELS, embeddings=zs.EmbeddingCache())
    assert labels == [score.label for score in expected.scores]
    for ours, theirs in zip(result["labels"], expected.scores, strict=True):
        assert ours["cosine"] == pytest.approx(theirs.cosine, abs=1e-5)

    again = client.predict(handle_file(str(PHOTOS[0])), "un gatto, un cane", "{}", api_name="/zero_shot")
    assert again["image_embedding"] == "cached" and again["timings_ms"]["image_encoder"] == 0.0
    assert [score["prompt"] for score in again["labels"]] == [score["label"] for score in again["labels"]]


def test_search_then_a_new_query_uses_the_cached_photos(client: Client) -> None:
    photos = [handle_file(str(path)) for path in PHOTOS]
    first = client.predict(photos, "una tazza di caffè", 2, api_name="/search_images")
    assert [match["rank"] for match in first["ranking"]] == [1, 2] and first["images"] == 4
    assert {match["name"] for match in first["ranking"]} <= {path.name for path in PHOTOS}
    assert first["ranking"][0]["cosine"] >= first["ranking"][1]["cosine"]
    second = client.predict(photos, "un astronauta", 4, api_name="/search_images")
    assert second["embeddings"] == {"computed": 0, "cached": 4}
    assert second["timings_ms"]["image_encoder"] == 0.0 and len(second["ranking"]) == 4


def test_rank_captions(client: Client) -> None:
    result = client.predict(
        handle_file(str(PHOTOS[1])), "una tazza di caffè\nun gatto, sul divano", api_name="/rank_captions"
    )
    assert {score["label"] for score in result["labels"]} == {"una tazza di caffè", "un gatto, sul divano"}


@pytest.mark.parametrize(
    ("arguments", "endpoint", "message"),
    [
        (("", "una foto di {}"), "/zero_shot", "Give at least one label"),
        (("un gatto", "una foto"), "/zero_shot", r"must contain \{\} where each label goes"),
        ((", ".join(f"cosa {n}" for n in range(200)), "{}"), "/zero_shot", "At most 64 labels"),
        (("   ", 3), "/search_images", "Type what to look for"),
    ],
)
def test_bad_text_gets_a_clear_message(client: Client, arguments: tuple, endpoint: str, message: str) -> None:
    image = [handle_file(str(PHOTOS[0]))] if endpoint == "/search_images" else handle_file(str(PHOTOS[0]))
    with pytest.raises(Exception, match=message):
        client.predict(image, *arguments, api_name=endpoint)


def test_a_bad_photo_among_good_ones_is_named(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(Exception, match=r"Image 2 \(broken.png\): .*not an image in a supported format"):
        client.predict([handle_file(str(PHOTOS[0])), handle_file(str(bad))], "un gatto", 2, api_name="/search_images")
    result = client.predict([handle_file(str(PHOTOS[0]))], "un gatto", 2, api_name="/search_images")
    assert len(result["ranking"]) == 1 and any("always 100%" in note for note in result["notes"])
