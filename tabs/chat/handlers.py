"""The Visual chat tab's handlers: the chat endpoint, drawing marks (clicks and brush), and the turns of
the conversation. Plain functions of component values; tabs/chat/wiring.py connects them to events."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
from PIL import Image

from core import chat as core_chat
from core import chat_memory, visual_prompts
from core.chat import ChatOptions
from core.errors import InputError
from core.images import load_image
from core.settings import get_settings
from tabs.components import on_gpu, user_errors

DEFAULTS = ChatOptions()
KIND_CHOICES = [
    ("Rectangle", "rectangle"),
    ("Ellipse", "ellipse"),
    ("Arrow", "arrow"),
    ("Point", "point"),
    ("Scribble", "scribble"),
]
COLOR_CHOICES = list(visual_prompts.COLORS)
BRUSH_COLORS = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in visual_prompts.COLORS.items()}
EDITOR_SIDE = 3 * visual_prompts.SIZE_ANCHOR
"""The brush panel shows the photo scaled to 1008 pixels on its longer side: then one brush size, 9
pixels there, is the scribble width of every photo once the strokes are scaled to it (int(3 * 1008 / 336),
against int(3 * max(w, h) / 336) on the photo), and the browser, which sends the whole canvas after every
stroke, never has to paint on a photo of many megapixels (the model reads 336×336)."""
BRUSH_RADIUS = visual_prompts.brush_width((EDITOR_SIDE, EDITOR_SIDE)) / 2
"""gradio's brush size is a radius."""
THINKING = "…"
Messages = list[dict[str, str]]
Marks = list[dict[str, Any]] | None
Points = list[list[float]] | None
Strokes = visual_prompts.Strokes | None
ChatFn = Callable[..., Iterator[dict[str, Any]]]


@user_errors("answer")
@on_gpu(duration=120)
def chat_image(
    image: str | None,
    shapes: Marks,
    history: list[list[str]] | None,
    question: str,
    temperature: float = DEFAULTS.temperature,
    top_p: float = DEFAULTS.top_p,
    max_new_tokens: float = DEFAULTS.max_new_tokens,
    seed: float = DEFAULTS.seed,
) -> Iterator[dict[str, Any]]:
    """Ask ViP-LLaVA about an image with visual prompts drawn on it; the answer streams token by token.

    Args:
        image: the photo (any common format), with or without marks already drawn on it.
        shapes: marks to draw, [] for none: [{"kind": "rectangle" | "ellipse" | "arrow" | "point" |
            "scribble", "color": "red" | "lime" | "blue" | "yellow" | "fuchsia" | "aqua" | "orange" |
            "purple" | "gold", "points": [[x, y], ...]}] in image pixels: two corners (rectangle,
            ellipse), tail then head (arrow), one point, or the path of a scribble.
        history: the conversation so far as [[question, answer], ...], [] for a new one.
        question: what to ask, e.g. "What is within the red rectangle?".
        temperature: 0 for greedy decoding, up to 2 for sampling.
        top_p: nucleus sampling threshold (above 0, at most 1).
        max_new_tokens: length limit of the answer in tokens.
        seed: random seed for sampling; the same seed gives the same answer.

    Returns:
        {"answer", "question", "history" (with this turn once done), "prompt" (the exact text sent),
        "shapes", "model", "device", "new_tokens", "timings_ms": {"preprocess", "generate", "load"}, "done"}.
        Partial results have "done": False; the last one is the final answer.
    """
    options = core_chat.validate_options(temperature, top_p, max_new_tokens, seed)
    question = core_chat.validate_question(question)
    past = core_chat.validate_history(history)
    rgb = _photo(image)
    marks = visual_prompts.parse_shapes(shapes, rgb.size)
    for result in core_chat.stream_chat(rgb, marks, question, past, options):
        yield result.to_dict()


@functools.lru_cache(maxsize=8)
def _decoded(path: str, max_pixels: int) -> Image.Image:
    return load_image(path, max_pixels=max_pixels)


def _photo(path: str | None) -> Image.Image:
    """The uploaded photo, decoded once per upload file and size limit: each click redraws the marks
    without reading the file again. Never changed in place (drawing works on copies)."""
    if not isinstance(path, str):
        return load_image(path)  # its message for what is not an upload
    return _decoded(path, get_settings().max_image_pixels)


def _messages(history: list[list[str]] | None, pending: tuple[str, str] | None = None) -> Messages:
    messages: Messages = []
    for question, answer in [*(history or []), *([pending] if pending else [])]:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def _describe(shape: visual_prompts.Shape) -> str:
    points = " → ".join(f"({x:g}, {y:g})" for x, y in shape.points[:2])
    return f"{shape.color} {shape.kind} {points}{' …' if len(shape.points) > 2 else ''}"


def _describe_strokes(strokes: visual_prompts.Strokes) -> str:
    *others, last = strokes.colors()
    names = f"{', '.join(others)} and {last}" if others else last
    return f"brush: {names} scribble{'s' if others else ''}"


@user_errors("draw the marks")
def render(
    image: str | None,
    shapes: Marks,
    pending: list[list[float]],
    color: str,
    strokes: Strokes = None,
) -> tuple[Image.Image | None, Image.Image | None, str]:
    """The drawing canvas (brush strokes, marks and the clicks of an unfinished mark) and exactly what
    the model sees: the photo with the brush strokes, the marks drawn on top."""
    if not image:
        return None, None, ""
    photo = visual_prompts.paint(_photo(image), strokes)
    marks = visual_prompts.parse_shapes(shapes, photo.size)
    canvas = visual_prompts.draw_pending(visual_prompts.draw(photo, marks), [tuple(p) for p in pending], color)
    parts = [f"mark {i}: {_describe(shape)}" for i, shape in enumerate(marks, start=1)]
    parts += [_describe_strokes(strokes)] if strokes else []
    listing = " · ".join(parts) or "No marks yet."
    if pending:
        listing += f" · {len(pending)} click{'s' if len(pending) > 1 else ''} of the next mark placed"
    return canvas, core_chat.model_view(photo, marks), listing


def _render_all(
    image: str | None,
    shapes: list[dict[str, Any]],
    pending: list[list[float]],
    color: str,
    strokes: Strokes,
) -> tuple:
    canvas, preview, listing = render(image, shapes, pending, color, strokes)
    return shapes, pending, canvas, preview, listing


def editor_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = EDITOR_SIDE / max(size)
    return max(round(size[0] * scale), 1), max(round(size[1] * scale), 1)


def brush_for(color: str) -> gr.Brush:
    """The nine named colours only, `color` in hand, as wide as a scribble."""
    return gr.Brush(
        colors=list(BRUSH_COLORS.values()),
        color_mode="fixed",
        default_color=BRUSH_COLORS.get(color, BRUSH_COLORS["red"]),
        default_size=BRUSH_RADIUS,  # type: ignore[arg-type]
    )


def _editor(photo: Image.Image | None) -> gr.ImageEditor:
    """The brush panel for a new photo: the photo at EDITOR_SIDE, nothing painted yet.

    Only the value: an update of any other property makes gradio 6.31's page read the editor's data
    first and write it back when that is done, which can undo a brush colour set in the meantime."""
    if photo is None:
        return gr.ImageEditor(value=None)
    background = photo.resize(editor_size(photo.size), Image.Resampling.LANCZOS)
    return gr.ImageEditor(value={"background": background, "layers": [], "composite": None})


@user_errors("read the brush strokes")
def brush_changed(
    image: str | None,
    layers: list[Any] | None,
    shapes: Marks,
    pending: Points,
    color: str,
) -> tuple:
    """Brush strokes painted (or undone, or erased) on the editor's `layers`: snap them to the named
    colours and redraw."""
    if not image:
        return None, None, None, ""
    strokes = visual_prompts.brush_strokes(layers or [])
    if strokes and not strokes.fits(_photo(image).size):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()  # painted on the previous photo
    return (strokes, *render(image, shapes, pending or [], color, strokes))


@user_errors("clear the brush strokes")
def restore_brush(image: str | None, shapes: Marks, pending: Points, color: str) -> tuple:
    """The brush panel's own "clear canvas" also removes the photo: put it back, with no strokes."""
    if not image:
        return None, None, None, "", gr.skip()
    return (None, *render(image, shapes, pending or [], color), _editor(_photo(image)))


def show_panels(mode: str) -> tuple[gr.Group, gr.Group]:
    """Show the click canvas or the brush panel ("hidden" keeps the other one mounted)."""
    brush = mode == "brush"
    return gr.Group(visible="hidden" if brush else True), gr.Group(visible=True if brush else "hidden")


def brush_color(color: str) -> gr.ImageEditor:
    return gr.ImageEditor(brush=brush_for(color))


@user_errors("add the mark")
def add_click(
    image: str | None,
    shapes: Marks,
    pending: Points,
    kind: str,
    color: str,
    strokes: Strokes,
    event: gr.SelectData,
) -> tuple:
    if not image:
        raise InputError("Upload an image or pick an example first.")
    shapes, pending = list(shapes or []), [*(pending or []), [float(v) for v in event.index]]
    if len(pending) == visual_prompts.POINTS_NEEDED[kind] and kind != "scribble":
        if len(shapes) >= visual_prompts.MAX_SHAPES:
            raise InputError(f"At most {visual_prompts.MAX_SHAPES} marks: undo one first.")
        size = _photo(image).size
        shapes.append(visual_prompts.parse_shape({"kind": kind, "color": color, "points": pending}, size).to_dict())
        pending = []
    return _render_all(image, shapes, pending, color, strokes)


@user_errors("finish the scribble")
def finish_scribble(image: str | None, shapes: Marks, pending: Points, color: str, strokes: Strokes) -> tuple:
    if not image or len(pending or []) < 2:
        raise InputError("Click at least two points along the scribble first.")
    shapes = [*(shapes or []), {"kind": "scribble", "color": color, "points": pending}]
    visual_prompts.parse_shapes(shapes, _photo(image).size)
    return _render_all(image, shapes, [], color, strokes)


def undo(image: str | None, shapes: Marks, pending: Points, color: str, strokes: Strokes) -> tuple:
    if pending:
        return _render_all(image, list(shapes or []), [], color, strokes)
    return _render_all(image, list(shapes or [])[:-1], [], color, strokes)


@user_errors("clear the marks")
def clear_marks(image: str | None, color: str) -> tuple:
    """No shapes and no brush strokes (the brush panel starts again from the photo)."""
    photo = _photo(image) if image else None
    return (*_render_all(image, [], [], color, None), None, _editor(photo))


@user_errors("open the image")
def new_image(image: str | None, example_marks: list[dict[str, Any]] | None, color: str) -> tuple:
    """A new image starts a new conversation, with no marks (or an example's) and no brush strokes."""
    photo = _photo(image) if image else None
    drawing = _render_all(image, list(example_marks or []), [], color, None)
    return (*drawing, [], [], None, None, None, _editor(photo))


def _model_photo(image: str | None, strokes: Strokes) -> str | Image.Image | None:
    """The photo the chat reads: the upload itself, or a copy with the brush strokes painted on it."""
    return visual_prompts.paint(_photo(image), strokes) if image and strokes else image


@user_errors("answer")
def ask(
    question: str,
    history: list[list[str]] | None,
    image: str | None = None,
    strokes: Strokes = None,
) -> tuple[str, str, Messages, None, str | Image.Image | None]:
    if not question or not question.strip():
        raise gr.Error("Type a question about the image.", title="Could not answer")
    return question, "", _messages(history, (question, THINKING)), None, _model_photo(image, strokes)


@user_errors("regenerate")
def regenerate(
    history: list[list[str]] | None, image: str | None = None, strokes: Strokes = None
) -> tuple[list[list[str]], str, Messages, None, str | Image.Image | None]:
    if not history:
        raise gr.Error("There is no answer to regenerate yet.", title="Could not regenerate")
    *kept, (question, _) = history
    return kept, question, _messages(kept, (question, THINKING)), None, _model_photo(image, strokes)


def show_partial(result: dict[str, Any] | None) -> Messages | Any:
    if not result:
        return gr.skip()
    if result["done"]:
        return _messages(result["history"])
    return _messages(result["history"], (result["question"], result["answer"] or THINKING))


def settle(result: dict[str, Any] | None, history: list[list[str]] | None) -> tuple[list[list[str]], Messages]:
    """After a turn: keep its answer in the history when it finished (an error leaves the history as it was)."""
    if result and result["done"]:
        history = result["history"]
    return list(history or []), _messages(history)


def stop(result: dict[str, Any] | None, history: list[list[str]] | None) -> tuple[list[list[str]], Messages]:
    """Stopped mid-answer: keep what was written so far as the answer."""
    if result and not result["done"] and result["answer"]:
        history = [*result["history"], [result["question"], result["answer"]]]
    return list(history or []), _messages(history)


def clear_chat() -> tuple[list, list, None, str]:
    return [], [], None, ""


def timing_line(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    timings = result["timings_ms"]
    weights = f" ({result['weights']})" if result.get("weights") else ""
    if not result["done"] and not result["answer"]:
        line = f"Reading the image and the question ({result.get('prompt_tokens', 0)} tokens) on {result['device']}…"
    else:
        line = f"**{timings['generate']:.0f} ms** generating on {result['device']}{weights}"
    line += f" · preprocessing {timings['preprocess']:.0f} ms"
    if timings["load"] is not None:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    if result["done"]:
        return line + f" · {result['new_tokens']} tokens"
    return line + (" · writing…" if result["answer"] else "")


def device_notice() -> str:
    """What running the real model on this machine's CPU costs; nothing on a GPU."""
    notice = chat_memory.device_notice()
    return f"ℹ️ {notice}" if notice else ""
