"""The Visual chat tab's API through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from core.chat import ChatOptions, build_prompt, chat
from core.images import load_image
from core.visual_prompts import parse_shapes

ASSETS = Path(__file__).resolve().parent.parent / "assets"
COFFEE = ASSETS / "coffee.jpg"
BOX = [{"kind": "rectangle", "color": "red", "points": [[165, 15], [420, 320]]}]
PARAMETERS = ["image", "shapes", "history", "question", "temperature", "top_p", "max_new_tokens", "seed"]


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def ask(client: Client, shapes: list, history: list, question: str, options: ChatOptions) -> dict[str, Any]:
    o = options
    return client.predict(
        handle_file(str(COFFEE)), shapes, history, question, o.temperature, o.top_p, o.max_new_tokens, o.seed,
        api_name="/chat",
    )  # fmt: skip


def expected(shapes: list, history: list, question: str, options: ChatOptions) -> Any:
    image = load_image(COFFEE)
    return chat(image, parse_shapes(shapes, image.size), question, [tuple(t) for t in history], options)


def test_chat_endpoint_is_named(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/chat"]["parameters"]] == PARAMETERS


def test_two_turns_equal_core(client: Client) -> None:
    options = ChatOptions(temperature=0, max_new_tokens=12)
    first = ask(client, BOX, [], "What is within the red rectangle?", options)
    core_first = expected(BOX, [], "What is within the red rectangle?", options)
    assert first["done"] is True and first["answer"] == core_first.answer
    assert first["prompt"] == build_prompt("What is within the red rectangle?")
    assert first["history"] == [["What is within the red rectangle?", core_first.answer]]
    assert first["shapes"] == BOX and first["model"] == "vip-llava-7b"
    assert set(first["timings_ms"]) == {"preprocess", "generate", "load"}

    sampled = ChatOptions(temperature=0.7, top_p=0.9, max_new_tokens=12, seed=3)
    second = ask(client, BOX, first["history"], "Is it hot?", sampled)
    core_second = expected(BOX, first["history"], "Is it hot?", sampled)
    assert second["answer"] == core_second.answer
    assert second["prompt"].endswith(f"###Assistant: {core_first.answer}###Human: Is it hot?###Assistant:")
    assert len(second["history"]) == 2


def test_chat_streams_and_ends_with_the_answer(client: Client) -> None:
    job = client.submit(handle_file(str(COFFEE)), [], [], "Describe the image.", 0.0, 0.9, 24, 0, api_name="/chat")
    final = job.result()
    updates = job.outputs()
    assert updates[-1] == final and final["done"] is True
    assert len(updates) >= 2 and all(not update["done"] for update in updates[:-1])
    assert updates[-2]["answer"] == final["answer"]
    assert final["answer"] == expected([], [], "Describe the image.", ChatOptions(0, 0.9, 24, 0)).answer


def test_bad_requests_get_clear_messages(client: Client) -> None:
    options = ChatOptions(temperature=0, max_new_tokens=4)
    with pytest.raises(Exception, match="Unknown colour 'green'"):
        ask(client, [{"kind": "point", "color": "green", "points": [[1, 1]]}], [], "Hi?", options)
    with pytest.raises(Exception, match="outside the 600×400 image"):
        ask(client, [{"kind": "point", "color": "red", "points": [[700, 1]]}], [], "Hi?", options)
    with pytest.raises(Exception, match="Type a question"):
        ask(client, [], [], " ", options)
    with pytest.raises(Exception, match="No image was given"):
        client.predict(None, [], [], "Hi?", 0, 0.9, 4, 0, api_name="/chat")
    assert ask(client, [], [], "Hi?", options)["done"] is True  # the app still works
