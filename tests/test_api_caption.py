"""The Caption tab's API through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from core.caption import Decoding, caption, caption_batch
from core.images import load_image

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CHELSEA = ASSETS / "chelsea.jpg"
CAPTION_PARAMETERS = [
    "image",
    "model",
    "mode",
    "max_new_tokens",
    "num_beams",
    "n_best",
    "temperature",
    "top_p",
    "seed",
    "length_penalty",
]


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def ask(client: Client, image: Path, model: str, decoding: Decoding) -> dict[str, Any]:
    d = decoding
    return client.predict(
        handle_file(str(image)),
        model,
        d.mode,
        d.max_new_tokens,
        d.num_beams,
        d.n_best,
        d.temperature,
        d.top_p,
        d.seed,
        d.length_penalty,
        api_name="/caption",
    )


def test_caption_endpoints_are_named(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/caption"]["parameters"]] == CAPTION_PARAMETERS
    batch_parameters = [p["parameter_name"] for p in endpoints["/caption_batch"]["parameters"]]
    assert batch_parameters == [
        "images",
        "model",
        "mode",
        "max_new_tokens",
        "num_beams",
        "temperature",
        "top_p",
        "seed",
        "length_penalty",
    ]


@pytest.mark.parametrize(
    ("model", "decoding"),
    [
        ("vit-gpt2", Decoding("greedy", max_new_tokens=16)),
        ("vit-gpt2", Decoding("beam", max_new_tokens=10, num_beams=5, n_best=4)),
        ("trocr-base-handwritten", Decoding("beam", max_new_tokens=10, num_beams=4, n_best=4, length_penalty=2.0)),
        ("trocr-base-printed", Decoding("sampling", max_new_tokens=16, temperature=0.7, top_p=0.8, seed=42)),
    ],
)
def test_caption_equals_core(client: Client, model: str, decoding: Decoding) -> None:
    result = ask(client, CHELSEA, model, decoding)
    expected = caption(load_image(CHELSEA), model, decoding)
    assert result["done"] is True and result["mode"] == decoding.mode and result["model"] == model
    assert result["caption"] == expected.caption
    assert [c["text"] for c in result["candidates"]] == [c.text for c in expected.candidates]
    if decoding.mode == "beam":
        assert len(result["candidates"]) == 4
        assert [c["score"] for c in result["candidates"]] == pytest.approx([c.score for c in expected.candidates])
    else:
        assert [c["score"] for c in result["candidates"]] == [None]
    assert set(result["timings_ms"]) == {"preprocess", "generate", "load"}
    assert result["generation"] == expected.generation
    assert result["generation"]["max_new_tokens"] == decoding.max_new_tokens
    assert result["generation"]["num_beams"] == (decoding.num_beams if decoding.mode == "beam" else 1)
    if decoding.mode == "beam":
        assert result["generation"]["length_penalty"] == decoding.length_penalty


def test_caption_streams_to_a_client_and_ends_with_the_caption(client: Client) -> None:
    decoding = Decoding("greedy", max_new_tokens=24)
    job = client.submit(handle_file(str(CHELSEA)), "vit-gpt2", "greedy", 24, 4, 3, 1.0, 0.9, 0, api_name="/caption")
    final = job.result()
    updates = job.outputs()
    assert updates[-1] == final and final["done"] is True
    assert final["caption"] == caption(load_image(CHELSEA), "vit-gpt2", decoding).caption
    assert all(not update["done"] for update in updates[:-1])


def test_caption_batch_equals_core(client: Client) -> None:
    names = ["chelsea.jpg", "coffee.jpg", "text-line.png"]
    result = client.predict(
        [handle_file(str(ASSETS / name)) for name in names],
        "vit-gpt2",
        "greedy",
        16,
        4,
        1.0,
        0.9,
        0,
        api_name="/caption_batch",
    )
    expected = caption_batch([load_image(ASSETS / name) for name in names], "vit-gpt2", Decoding(max_new_tokens=16))
    assert result["files"] == names
    assert [c["text"] for c in result["captions"]] == [c.text for c in expected.captions]
    assert result["mode"] == "greedy" and result["model"] == "vit-gpt2"


def test_bad_requests_get_clear_messages(client: Client, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="at most 2 captions"):
        ask(client, CHELSEA, "vit-gpt2", Decoding("beam", num_beams=2, n_best=3))
    with pytest.raises(Exception, match="No image was given"):
        client.predict(None, "vit-gpt2", "greedy", 8, 4, 3, 1.0, 0.9, 0, api_name="/caption")
    with pytest.raises(Exception, match="not in the list of choices"):  # the Radio refuses it first
        ask(client, CHELSEA, "levit-128S", Decoding())
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is not a picture")
    with pytest.raises(Exception, match=r"Image 2 \(notes.png\): This file is not an image"):
        client.predict(
            [handle_file(str(CHELSEA)), handle_file(str(not_an_image))],
            "vit-gpt2",
            "greedy",
            8,
            4,
            1.0,
            0.9,
            0,
            api_name="/caption_batch",
        )
    with pytest.raises(Exception, match="Caption at most 16 images at once, not 17"):
        client.predict(
            [handle_file(str(CHELSEA))] * 17, "vit-gpt2", "greedy", 8, 4, 1.0, 0.9, 0, api_name="/caption_batch"
        )
    result = ask(client, CHELSEA, "vit-gpt2", Decoding(max_new_tokens=4))  # the app still works
    assert result["done"] is True
