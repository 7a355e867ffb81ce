"""core.chat: the prompt format, the image the model sees, streaming and stopping, memory checks (tiny mode)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import chat as core_chat
from core.chat import ChatOptions, build_prompt, chat, clean_answer, model_view, stream_chat
from core.errors import InputError, ModelUnavailableError
from core.images import load_image
from core.models import get_cache
from core.registry import get_spec
from core.streaming import GenerationStream
from core.visual_prompts import Shape

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions."
)
BOX = [Shape("rectangle", "red", ((165, 15), (420, 320)))]


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return load_image(ASSETS / "coffee.jpg")


def test_prompt_for_one_turn_is_the_documented_format() -> None:
    assert build_prompt("What is within the red rectangle?") == (
        f"{SYSTEM}###Human: <image>\nWhat is within the red rectangle?###Assistant:"
    )


def test_prompt_for_several_turns_is_the_documented_format() -> None:
    history = [("What is this?", "A cup of coffee."), ("And the red box?", "A saucer.")]
    assert build_prompt("Is it hot?", history) == (
        f"{SYSTEM}###Human: <image>\nWhat is this?###Assistant: A cup of coffee."
        "###Human: And the red box?###Assistant: A saucer.###Human: Is it hot?###Assistant:"
    )


def test_clean_answer_stops_at_the_next_turn() -> None:
    assert clean_answer(" A cup.###Human: what") == "A cup."
    assert clean_answer("  a cup \n") == "a cup"
    assert clean_answer("###") == ""


def test_model_view_pads_to_a_square_and_resizes(coffee: Image.Image) -> None:
    view = model_view(coffee, BOX)
    assert view.size == (336, 336)
    pixels = np.asarray(view)
    # 600x400 -> a 600x600 square with 100 px of CLIP's mean colour above and below -> 56 px at 336
    assert (pixels[:50] == core_chat.PAD_COLOR).all() and (pixels[-50:] == core_chat.PAD_COLOR).all()
    assert not (pixels[60:276] == core_chat.PAD_COLOR).all(axis=-1).any()
    marked = np.asarray(model_view(coffee, []))
    assert (np.abs(pixels.astype(int) - marked).sum(-1) > 0).any()  # the box shows


def test_model_view_is_exactly_what_the_processor_hands_the_model(coffee: Image.Image) -> None:
    loaded, _ = get_cache().get("vip-llava-7b")
    view = model_view(coffee, BOX)
    processor = loaded.processor.image_processor
    values = processor(images=view, return_tensors="pt")["pixel_values"][0]
    mean = torch.tensor(processor.image_mean)[:, None, None]
    std = torch.tensor(processor.image_std)[:, None, None]
    seen = ((values * std + mean) * 255).permute(1, 2, 0).numpy()
    assert np.abs(seen - np.asarray(view, dtype=np.float64)).max() < 0.01


def test_the_processor_expands_the_image_token_to_576() -> None:
    loaded, _ = get_cache().get("vip-llava-7b")
    view = Image.new("RGB", (336, 336))
    inputs = loaded.processor(images=view, text=build_prompt("hi"), return_tensors="pt")
    image_id = loaded.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == 576
    assert inputs["input_ids"][0, 0] == loaded.processor.tokenizer.bos_token_id
    assert type(loaded.model).__name__ == "VipLlavaForConditionalGeneration"


def test_greedy_answer_equals_generate_and_decode(coffee: Image.Image) -> None:
    options = ChatOptions(temperature=0, max_new_tokens=12)
    result = chat(coffee, BOX, "What is within the red rectangle?", [], options)
    loaded, _ = get_cache().get("vip-llava-7b")
    inputs = loaded.processor(images=model_view(coffee, BOX), text=result.prompt, return_tensors="pt")
    with torch.inference_mode():
        output = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new = output[0, inputs["input_ids"].shape[1] :]
    assert result.answer == clean_answer(loaded.processor.tokenizer.decode(new, skip_special_tokens=True))
    assert result.answer and result.done and result.new_tokens <= 12
    assert result.history == [("What is within the red rectangle?", result.answer)]
    assert result.prompt == build_prompt("What is within the red rectangle?")


def test_the_streamed_text_ends_equal_to_the_final_answer(coffee: Image.Image) -> None:
    options = ChatOptions(temperature=0.8, top_p=0.9, max_new_tokens=40, seed=5)
    history = [("What is this?", "A cup.")]
    results = list(stream_chat(coffee, BOX, "And the saucer?", history, options))
    *partials, final = results
    assert len(partials) >= 2 and all(not r.done for r in partials) and final.done
    assert partials[-1].answer == final.answer
    assert all(final.answer.startswith(r.answer) for r in partials)
    assert final.history == [*history, ("And the saucer?", final.answer)]
    assert all(r.history == history for r in partials)
    assert chat(coffee, BOX, "And the saucer?", history, options).answer == final.answer  # same seed, same answer


def test_marks_change_what_the_model_reads(coffee: Image.Image) -> None:
    options = ChatOptions(temperature=0, max_new_tokens=16)
    plain = chat(coffee, [], "What is this?", [], options).answer
    marked = chat(coffee, [Shape("ellipse", "blue", ((10, 10), (590, 390)))], "What is this?", [], options).answer
    assert plain != marked


def test_closing_the_stream_stops_generation(coffee: Image.Image) -> None:
    loaded, _ = get_cache().get("vip-llava-7b")
    inputs = loaded.processor(images=model_view(coffee, BOX), text=build_prompt("Why?"), return_tensors="pt")
    length = inputs["input_ids"].shape[1]

    def generate(**kwargs: object) -> torch.Tensor:
        with torch.inference_mode():
            return loaded.model.generate(**inputs, max_new_tokens=2000, min_new_tokens=2000, do_sample=False, **kwargs)

    stream = GenerationStream(generate, loaded.processor.tokenizer)
    pieces = iter(stream)
    next(pieces)
    start = time.perf_counter()
    pieces.close()
    output = stream.wait(timeout=30)
    assert output is not None and time.perf_counter() - start < 30
    assert output.shape[1] - length < 2000


def test_closing_stream_chat_stops_it(coffee: Image.Image) -> None:
    results = stream_chat(coffee, BOX, "Why?", [], ChatOptions(temperature=0, max_new_tokens=300))
    first = next(results)
    assert not first.done
    results.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: core_chat.validate_options(temperature=-0.1), "Temperature must be a number from 0 to 2"),
        (lambda: core_chat.validate_options(top_p=0), "Top-p must be above 0"),
        (lambda: core_chat.validate_options(max_new_tokens=0), "Max new tokens must be a whole number from 1 to 512"),
        (lambda: core_chat.validate_options(max_new_tokens=2.5), "whole number"),
        (lambda: core_chat.validate_options(seed=-1), "Seed"),
        (lambda: core_chat.validate_question("  "), "Type a question"),
        (lambda: core_chat.validate_question("x" * 2001), "2001 characters long; the limit is 2000"),
        (lambda: core_chat.validate_history("hello"), r"list of \[question, answer\] pairs"),
        (lambda: core_chat.validate_history([["q"]]), r"\[question, answer\] pairs of text"),
        (lambda: core_chat.validate_history([["q", "a"]] * 20), "reached 20 questions: clear it"),
    ],
)
def test_bad_settings_are_refused_clearly(call: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()  # type: ignore[operator]


def test_options_and_history_that_pass() -> None:
    assert core_chat.validate_options(0, 1, 512, 7) == ChatOptions(0.0, 1.0, 512, 7)
    assert core_chat.validate_history(None) == []
    assert core_chat.validate_history([[" q ", " a "]]) == [("q", "a")]


def test_a_model_that_does_not_fit_is_refused_before_loading() -> None:
    spec = get_spec("vip-llava-7b")
    needed = core_chat.required_bytes(spec)
    assert 0 < needed < 50_000_000  # the tiny model: its weights on disk, not 7B parameters
    core_chat.check_memory(spec, available=needed)
    with pytest.raises(ModelUnavailableError, match=r"ViP-LLaVA-7B needs about .* of RAM, and only 0\.0 GB is free"):
        core_chat.check_memory(spec, available=1000)


def test_the_cpu_notice_says_what_the_real_model_needs() -> None:
    notice = core_chat.device_notice()
    assert notice is not None
    assert notice.startswith("ViP-LLaVA-7B needs about 28 GB of RAM in float32 on the CPU and answers slowly")
    assert "float16" in notice


def test_parameter_count_reads_the_weights() -> None:
    loaded, _ = get_cache().get("vip-llava-7b")
    assert core_chat.parameter_count(get_spec("vip-llava-7b")) == sum(p.numel() for p in loaded.model.parameters())


def test_a_too_long_conversation_is_refused(coffee: Image.Image) -> None:
    history = [("q", "word " * 3000)]
    with pytest.raises(InputError, match="The conversation is too long for the model"):
        chat(coffee, BOX, "And now?", history, ChatOptions(temperature=0, max_new_tokens=500))
