"""core.chat: the prompt format, the image the model sees, streaming and stopping, memory checks (tiny mode);
and the Visual chat tab's drawing handlers: the preview is the photo with the brush strokes and the shapes."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from core import chat as core_chat
from core import chat_memory, visual_prompts
from core.chat import ChatOptions, build_prompt, chat, clean_answer, model_view, stream_chat
from core.errors import InputError, ModelUnavailableError
from core.images import load_image
from core.models import get_cache
from core.registry import get_spec
from core.streaming import GenerationStream
from core.visual_prompts import COLORS, Shape, draw
from tabs import chat as chat_tab
from tabs.components import NOT_AN_UPLOAD, SketchUpload

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
        (lambda: core_chat.validate_options(temperature=-0.1), "Temperature must be from 0 to 2, not -0.1"),
        (lambda: core_chat.validate_options(top_p=0), "Top-p must be above 0"),
        (lambda: core_chat.validate_options(max_new_tokens=0), "Max new tokens must be from 1 to 512, not 0"),
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
    needed = chat_memory.required_bytes(spec)
    assert 0 < needed < 50_000_000  # the tiny model: its weights on disk, not 7B parameters
    chat_memory.check_memory(spec, available=needed)
    with pytest.raises(ModelUnavailableError, match=r"ViP-LLaVA-7B needs about .* of RAM, and only 0\.0 GB is free"):
        chat_memory.check_memory(spec, available=1000)


def test_the_cpu_notice_says_what_the_real_model_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_memory, "available_bytes", lambda settings=None: 15 * 10**9)
    notice = chat_memory.device_notice()
    assert notice is not None
    assert notice.startswith(
        "ViP-LLaVA-7B on the CPU needs about 28 GB of RAM in float32, 14 GB in bfloat16 or 8.0 GB with int8 weights."
    )
    assert "With 15 GB of free memory here it would load with int8 weights" in notice
    assert "float16" in notice
    monkeypatch.setattr(chat_memory, "available_bytes", lambda settings=None: 4 * 10**9)
    assert "It does not fit in the 4.0 GB of memory free here" in chat_memory.device_notice()


REAL_COUNTS = {"full_precision": 324_000_000, "language": 6_739_000_000}


@pytest.mark.parametrize(("free_gb", "expected"), [(40, "float32"), (30, "int8"), (16, "int8"), (15, "int8")])
def test_the_first_form_that_fits_is_chosen(monkeypatch: pytest.MonkeyPatch, free_gb: int, expected: str) -> None:
    monkeypatch.setattr(chat_memory, "parameter_counts", lambda spec, settings=None: REAL_COUNTS)
    spec = get_spec("vip-llava-7b")
    assert chat_memory.choose_form(spec, available=free_gb * 10**9) == expected
    # the bfloat16 load before the swap to int8 is the peak
    assert chat_memory.form_bytes(spec, "int8") == pytest.approx(7.063e9 * 2 * 1.05, rel=1e-3)


def test_no_form_that_fits_is_refused_with_what_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_memory, "parameter_counts", lambda spec, settings=None: REAL_COUNTS)
    with pytest.raises(
        ModelUnavailableError,
        match=r"needs about 15 GB of RAM, and only 6\.0 GB is free\. Free some memory, run it on a GPU",
    ):
        chat_memory.choose_form(get_spec("vip-llava-7b"), available=6 * 10**9)


def test_the_int8_form_loads_quantized_weights_and_answers(
    fresh_settings: pytest.MonkeyPatch, coffee: Image.Image
) -> None:
    fresh_settings.setenv("PLAYGROUND_CHAT_CPU_FORM", "int8")
    from core.models import ModelCache, load_model

    cache = ModelCache(2**40, loader=load_model)
    result = chat(coffee, BOX, "What is within the red rectangle?", options=ChatOptions(0, 0.9, 8, 0), cache=cache)
    assert result.done and result.weights == "int8 weights (vision tower in float32)"
    loaded, _ = cache.get("vip-llava-7b")
    language = loaded.model.model.language_model.layers[0].self_attn.q_proj
    vision = loaded.model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight
    assert isinstance(language, DynamicLinear) and language.weight().dtype == torch.qint8
    assert not hasattr(vision, "qdata") and vision.dtype == torch.float32
    assert isinstance(loaded.model.lm_head, torch.nn.Linear) and loaded.model.lm_head.weight.dtype == torch.float32
    swapped = [m for m in loaded.model.modules() if isinstance(m, DynamicLinear)]
    assert len(swapped) == 7 * loaded.model.config.text_config.num_hidden_layers  # q k v o gate up down
    plain = sum(p.numel() * 4 for p in (*loaded.model.parameters(), *loaded.model.buffers()))
    as_float32 = plain + sum(m.weight().numel() * 4 + m.bias().numel() * 4 for m in swapped if m.bias() is not None)
    as_float32 += sum(m.weight().numel() * 4 for m in swapped if m.bias() is None)
    assert plain < loaded.nbytes < as_float32


def test_parameter_count_reads_the_weights() -> None:
    loaded, _ = get_cache().get("vip-llava-7b")
    # in the int8 form (an earlier test may have loaded it) the swapped layers hold their weights outside parameters
    swapped = [m for m in loaded.model.modules() if isinstance(m, DynamicLinear)]
    int8_weights = sum(m.weight().numel() + (0 if m.bias() is None else m.bias().numel()) for m in swapped)
    in_model = sum(p.numel() for p in loaded.model.parameters()) + int8_weights
    assert chat_memory.parameter_count(get_spec("vip-llava-7b")) == in_model


def test_a_too_long_conversation_is_refused(coffee: Image.Image) -> None:
    history = [("q", "word " * 3000)]
    with pytest.raises(InputError, match="The conversation is too long for the model"):
        chat(coffee, BOX, "And now?", history, ChatOptions(temperature=0, max_new_tokens=500))


# --- the tab: brush strokes, shapes and the preview ------------------------------------------------

COFFEE = str(ASSETS / "coffee.jpg")
BOX_DICTS = [shape.to_dict() for shape in BOX]


def brush_layer() -> tuple[bytes, np.ndarray]:
    """A 600×400 layer as the editor sends it (PNG bytes): a lime stroke with an anti-aliased fringe, a
    faint pixel and an off-palette one; and the mask of what counts as painted."""
    layer = np.zeros((400, 600, 4), np.uint8)
    layer[200:205, 100:400] = (0, 255, 0, 255)
    layer[199, 100:400] = (20, 240, 30, 150)  # anti-aliased edge: painted, snapped to lime
    layer[205, 100:400] = (0, 255, 0, 40)  # faint: not painted
    layer[50, 50] = (250, 170, 10, 255)  # orange, nearly
    data = io.BytesIO()
    Image.fromarray(layer).save(data, "PNG")
    return data.getvalue(), layer[..., 3] >= 128


def expected_photo(coffee: Image.Image, mask: np.ndarray) -> Image.Image:
    pixels = np.array(coffee)
    pixels[mask] = COLORS["lime"]
    pixels[50, 50] = COLORS["orange"]
    return Image.fromarray(pixels)


def test_the_preview_is_the_photo_with_the_brush_strokes_and_the_shapes(coffee: Image.Image) -> None:
    data, mask = brush_layer()
    strokes, canvas, preview, listing = chat_tab.brush_changed(COFFEE, [data], BOX_DICTS, [], "red")
    photo = expected_photo(coffee, mask)
    assert np.array_equal(np.asarray(preview), np.asarray(model_view(photo, BOX)))
    assert np.array_equal(np.asarray(canvas), np.asarray(draw(photo, BOX)))
    assert listing == "mark 1: red rectangle (165, 15) → (420, 320) · brush: lime and orange scribbles"
    assert strokes.colors() == ["lime", "orange"]

    # a shape clicked afterwards keeps the strokes; what the chat reads is the photo with the strokes
    _, _, canvas, preview, _ = chat_tab.undo(COFFEE, BOX_DICTS, [], "red", strokes)
    assert np.array_equal(np.asarray(preview), np.asarray(model_view(photo, [])))
    *_, model_photo = chat_tab.ask("What is this?", [], COFFEE, strokes)
    assert np.array_equal(np.asarray(model_photo), np.asarray(photo))
    *_, unchanged = chat_tab.ask("What is this?", [], COFFEE, None)
    assert unchanged == COFFEE  # no strokes: the upload itself


def test_the_chat_reads_the_photo_the_preview_shows(coffee: Image.Image) -> None:
    data, _ = brush_layer()
    strokes, *_, preview, _ = chat_tab.brush_changed(COFFEE, [data], BOX_DICTS, [], "red")
    *_, model_photo = chat_tab.ask("What is this?", [], COFFEE, strokes)
    *_, final = chat_tab.chat_image(model_photo, BOX_DICTS, [], "What is this?", 0, 0.9, 8, 0)
    expected = chat(model_photo, BOX, "What is this?", [], ChatOptions(0, 0.9, 8, 0))
    assert final["answer"] == expected.answer
    assert np.array_equal(np.asarray(preview), np.asarray(model_view(model_photo, BOX)))


@pytest.mark.parametrize("layers", [None, [], [np.zeros((400, 600, 4), np.uint8)]])
def test_an_empty_editor_means_no_strokes(layers: object, coffee: Image.Image) -> None:
    strokes, _, preview, listing = chat_tab.brush_changed(COFFEE, layers, [], [], "red")
    assert strokes is None and listing == "No marks yet."
    assert np.array_equal(np.asarray(preview), np.asarray(model_view(coffee, [])))
    assert chat_tab.brush_changed(None, layers, [], [], "red") == (None, None, None, "")


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([b"not a png"], "A brush layer must be a PNG or WebP image"),
        ("layer.png", "The brush layers must be a list of images"),
        ([None], "A brush layer must be an image"),
        ([{"path": "/etc/passwd"}], "A brush layer must be an image"),
    ],
)
def test_bad_editor_values_get_clear_messages(layers: object, message: str) -> None:
    with pytest.raises(gr.Error, match=message):
        chat_tab.brush_changed(COFFEE, layers, [], [], "red")


def test_strokes_painted_on_a_previous_photo_are_ignored() -> None:
    square = np.zeros((300, 300, 4), np.uint8)  # the shape of another photo: a late event from before
    square[10, 10] = (255, 0, 0, 255)
    skip = type(gr.skip())
    assert all(isinstance(out, skip) for out in chat_tab.brush_changed(COFFEE, [square], [], [], "red"))


def test_a_new_photo_or_clear_marks_start_the_brush_afresh(coffee: Image.Image) -> None:
    *drawing, history, chatbot, _, _, strokes, editor = chat_tab.new_image(COFFEE, None, "lime")
    assert strokes is None and drawing[4] == "No marks yet." and history == [] and chatbot == []
    assert editor.value["layers"] == [] and editor.value["background"]["path"]
    assert Image.open(editor.value["background"]["path"]).size == (1008, 672)
    *_, strokes, editor = chat_tab.clear_marks(COFFEE, "red")
    assert strokes is None and editor.value["layers"] == []
    assert chat_tab.new_image(None, None, "red")[-1].value is None


def test_the_brush_has_the_named_colours_and_the_scribble_width() -> None:
    brush = chat_tab.brush_color("lime").brush
    assert brush.default_color == "#00ff00" and brush.color_mode == "fixed"
    assert brush.colors == ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#ffa500", "#800080",
                            "#ffd700"]  # fmt: skip
    assert brush.default_size == 4.5  # a radius: 9-pixel strokes on the 1008-pixel canvas, int(3 * 1008 / 336)


@pytest.mark.parametrize(
    ("size", "canvas", "width"),
    [
        ((600, 400), (1008, 672), 5),
        ((336, 336), (1008, 1008), 3),
        ((4000, 3000), (1008, 756), 35),
        ((150, 100), (1008, 672), 1),
    ],
)
def test_a_9_pixel_stroke_on_the_canvas_is_a_scribble_on_the_photo(
    size: tuple[int, int], canvas: tuple[int, int], width: int
) -> None:
    assert chat_tab.editor_size(size) == canvas
    layer = np.zeros((canvas[1], canvas[0], 4), np.uint8)
    middle = canvas[1] // 2
    layer[middle - 4 : middle + 5, 100:800] = (0, 0, 255, 255)  # 9 pixels wide, as the brush paints
    painted = np.asarray(visual_prompts.paint(Image.new("RGB", size), visual_prompts.brush_strokes([layer])))
    column = (painted[:, size[0] // 2] == COLORS["blue"]).all(axis=-1)
    assert abs(int(column.sum()) - width) <= 1 and width == visual_prompts.brush_width(size)


def test_the_brush_panel_keeps_the_last_sketch_of_each_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SketchUpload, "MAX_BYTES", 1000)
    editor, other = SketchUpload(), SketchUpload()
    assert editor.get_block_name() == "imageeditor"
    for target in ["/etc/passwd", "http://127.0.0.1:1/secret.png"]:
        with pytest.raises(gr.Error, match="Only files uploaded to this app"):
            editor.move_resource_to_block_cache(target)
    assert NOT_AN_UPLOAD.startswith("Only files uploaded to this app")

    def send(
        sketch: str, kind: str, index: str, content: bytes, session: str = "alice", to: SketchUpload = editor
    ) -> None:
        fields = {"id": sketch, "type": kind, "index": index, "component_id": str(to._id), "session_hash": session}
        copy = SketchUpload()  # gradio calls it on a session's copy of the component
        copy.accept_blobs(SimpleNamespace(data=fields, files=[(f"{kind}.png", content)]))

    def layers(session: str = "alice", of: SketchUpload = editor) -> list[bytes]:
        return of.painted_layers(SimpleNamespace(session_hash=session))

    assert layers() == []
    send("a", "background", "null", b"photo")
    send("a", "layer", "1", b"second")
    send("a", "layer", "0", b"first")
    send("a", "composite", "null", b"composite")
    assert layers() == [b"first", b"second"]  # only the layers, in order
    send("b", "background", "null", b"photo")  # the next stroke's sketch
    assert layers() == []
    send("b", "layer", "0", b"undone")
    send("b", "layer", "99", b"too many")
    send("b", "layer", "x", b"bad index")
    assert layers() == [b"undone"] and layers() == [b"undone"]
    send("c", "layer", "0", b"bob's", session="bob")
    send("c", "layer", "0", b"other editor", to=other)
    assert layers() == [b"undone"] and layers("bob") == [b"bob's"] and layers(of=other) == [b"other editor"]
    editor.forget(SimpleNamespace(session_hash="bob"))  # a cleared canvas sends nothing
    assert layers("bob") == [] and layers() == [b"undone"]
    big = b"x" * 250
    for number in range(4):
        send("d", "layer", "0", big, session=f"user {number}")
    assert layers() == [] and layers("bob") == []  # the least recently painted went first
    assert layers("user 0") == [big] and layers("user 3") == [big]
    send("e", "layer", "0", big, session="user 4")
    assert layers("user 0") == [] and layers("user 1") == [big]
    assert editor.preprocess(None) is None
