"""Visual chat tab: place boxes, ellipses, arrows, points and scribbles on a photo with clicks, paint
free-hand scribbles with a brush, see the image ViP-LLaVA will read, and chat about the marks with
answers streaming token by token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
from PIL import Image

from core import chat as core_chat
from core import visual_prompts as vp
from core.chat import ChatOptions
from core.errors import InputError
from core.images import load_image
from core.settings import get_settings
from tabs.components import SketchUpload, example_paths, fill_on_page_load, image_input, on_gpu, user_errors

DEFAULTS = ChatOptions()
KIND_CHOICES = [
    ("Rectangle", "rectangle"),
    ("Ellipse", "ellipse"),
    ("Arrow", "arrow"),
    ("Point", "point"),
    ("Scribble", "scribble"),
]
COLOR_CHOICES = list(vp.COLORS)
BRUSH_COLORS = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in vp.COLORS.items()}
EDITOR_SIDE = 3 * vp.SIZE_ANCHOR
"""The brush panel shows the photo scaled to 1008 pixels on its longer side: then one brush size, 9
pixels there, is the scribble width of every photo once the strokes are scaled to it (int(3 * 1008 / 336),
against int(3 * max(w, h) / 336) on the photo), and the browser, which sends the whole canvas after every
stroke, never has to paint on a photo of many megapixels (the model reads 336×336)."""
BRUSH_RADIUS = vp.brush_width((EDITOR_SIDE, EDITOR_SIDE)) / 2
"""gradio's brush size is a radius."""
HOW_TO = (
    "**Mark the photo in ViP-LLaVA's named colours, then ask about the marks.**\n"
    "- *Click shapes*: click on the image. Rectangle and ellipse: two opposite corners. Arrow: its tail, "
    "then its head (the tip touches the object). Point: one click. Scribble: click along the stroke, then "
    "*Finish scribble*.\n"
    "- *Brush*: paint free-hand scribbles with the mouse, in the colour picked under *Colour* and as wide "
    "as ViP-LLaVA's training scribbles for this photo. The brush panel's own ↶ undoes a stroke and its "
    "eraser rubs one out.\n"
    "- *Undo* takes back the last clicked shape, *Clear marks* removes every shape and brush stroke.\n\n"
    "Ask the way ViP-LLaVA learned: *the object within the red rectangle*, *pointed to by the lime arrow*, "
    "*at the blue point*, *with the yellow scribble*."
)
EXAMPLES = [
    (
        "coffee.jpg",
        [{"kind": "rectangle", "color": "red", "points": [[165, 15], [420, 320]]}],
        "What is within the red rectangle?",
    ),
    (
        "chelsea.jpg",
        [{"kind": "arrow", "color": "lime", "points": [[60, 40], [150, 130]]}],
        "What is pointed to by the lime arrow?",
    ),
    (
        "astronaut.jpg",
        [
            {"kind": "ellipse", "color": "yellow", "points": [[160, 40], [340, 230]]},
            {"kind": "point", "color": "aqua", "points": [[425, 130]]},
        ],
        "Describe the person within the yellow ellipse and the object at the aqua point.",
    ),
]
THINKING = "…"
Messages = list[dict[str, str]]
Marks = list[dict[str, Any]] | None
Points = list[list[float]] | None
ChatFn = Callable[..., Iterator[dict[str, Any]]]


@user_errors("answer")
@on_gpu(duration=120)
def chat_image(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
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
    rgb = load_image(image)
    marks = vp.parse_shapes(shapes, rgb.size)
    for result in core_chat.stream_chat(rgb, marks, question, past, options):
        yield result.to_dict()


def _messages(history: list[list[str]] | None, pending: tuple[str, str] | None = None) -> Messages:
    messages: Messages = []
    for question, answer in [*(history or []), *([pending] if pending else [])]:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def _describe(shape: vp.Shape) -> str:
    points = " → ".join(f"({x:g}, {y:g})" for x, y in shape.points[:2])
    return f"{shape.color} {shape.kind} {points}{' …' if len(shape.points) > 2 else ''}"


def _describe_strokes(strokes: vp.Strokes) -> str:
    *others, last = strokes.colors()
    names = f"{', '.join(others)} and {last}" if others else last
    return f"brush: {names} scribble{'s' if others else ''}"


@user_errors("draw the marks")
def render(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]],
    color: str,
    strokes: vp.Strokes | None = None,
) -> tuple[Image.Image | None, Image.Image | None, str]:
    """The drawing canvas (brush strokes, marks and the clicks of an unfinished mark) and exactly what
    the model sees: the photo with the brush strokes, the marks drawn on top."""
    if not image:
        return None, None, ""
    photo = vp.paint(load_image(image), strokes)
    marks = vp.parse_shapes(shapes, photo.size)
    canvas = vp.draw_pending(vp.draw(photo, marks), [tuple(p) for p in pending], color)
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
    strokes: vp.Strokes | None,
) -> tuple:
    canvas, preview, listing = render(image, shapes, pending, color, strokes)
    return shapes, pending, canvas, preview, listing


def _editor_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = EDITOR_SIDE / max(size)
    return max(round(size[0] * scale), 1), max(round(size[1] * scale), 1)


def _brush(color: str) -> gr.Brush:
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
    background = photo.resize(_editor_size(photo.size), Image.Resampling.LANCZOS)
    return gr.ImageEditor(value={"background": background, "layers": [], "composite": None})


@user_errors("read the brush strokes")
def brush_changed(
    image: str | None,
    layers: list[Any] | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]] | None,
    color: str,
) -> tuple:
    """Brush strokes painted (or undone, or erased) on the editor's `layers`: snap them to the named
    colours and redraw."""
    if not image:
        return None, None, None, ""
    strokes = vp.brush_strokes(layers or [])
    if strokes and not strokes.fits(load_image(image).size):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()  # painted on the previous photo
    return (strokes, *render(image, shapes, pending or [], color, strokes))


@user_errors("clear the brush strokes")
def restore_brush(
    image: str | None, shapes: list[dict[str, Any]] | None, pending: list[list[float]] | None, color: str
) -> tuple:
    """The brush panel's own "clear canvas" also removes the photo: put it back, with no strokes."""
    if not image:
        return None, None, None, "", gr.skip()
    return (None, *render(image, shapes, pending or [], color), _editor(load_image(image)))


def show_panels(mode: str) -> tuple[gr.Group, gr.Group]:
    """Show the click canvas or the brush panel ("hidden" keeps the other one mounted)."""
    brush = mode == "brush"
    return gr.Group(visible="hidden" if brush else True), gr.Group(visible=True if brush else "hidden")


def brush_color(color: str) -> gr.ImageEditor:
    return gr.ImageEditor(brush=_brush(color))


@user_errors("add the mark")
def add_click(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]] | None,
    kind: str,
    color: str,
    strokes: vp.Strokes | None,
    event: gr.SelectData,
) -> tuple:
    if not image:
        raise InputError("Upload an image or pick an example first.")
    shapes, pending = list(shapes or []), [*(pending or []), [float(v) for v in event.index]]
    if len(pending) == vp.POINTS_NEEDED[kind] and kind != "scribble":
        if len(shapes) >= vp.MAX_SHAPES:
            raise InputError(f"At most {vp.MAX_SHAPES} marks: undo one first.")
        size = load_image(image).size
        shapes.append(vp.parse_shape({"kind": kind, "color": color, "points": pending}, size).to_dict())
        pending = []
    return _render_all(image, shapes, pending, color, strokes)


@user_errors("finish the scribble")
def finish_scribble(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]] | None,
    color: str,
    strokes: vp.Strokes | None,
) -> tuple:
    if not image or len(pending or []) < 2:
        raise InputError("Click at least two points along the scribble first.")
    shapes = [*(shapes or []), {"kind": "scribble", "color": color, "points": pending}]
    vp.parse_shapes(shapes, load_image(image).size)
    return _render_all(image, shapes, [], color, strokes)


def undo(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]] | None,
    color: str,
    strokes: vp.Strokes | None,
) -> tuple:
    if pending:
        return _render_all(image, list(shapes or []), [], color, strokes)
    return _render_all(image, list(shapes or [])[:-1], [], color, strokes)


@user_errors("clear the marks")
def clear_marks(image: str | None, color: str) -> tuple:
    """No shapes and no brush strokes (the brush panel starts again from the photo)."""
    photo = load_image(image) if image else None
    return (*_render_all(image, [], [], color, None), None, _editor(photo))


@user_errors("open the image")
def new_image(image: str | None, example_marks: list[dict[str, Any]] | None, color: str) -> tuple:
    """A new image starts a new conversation, with no marks (or an example's) and no brush strokes."""
    photo = load_image(image) if image else None
    drawing = _render_all(image, list(example_marks or []), [], color, None)
    return (*drawing, [], [], None, None, None, _editor(photo))


def _model_photo(image: str | None, strokes: vp.Strokes | None) -> str | Image.Image | None:
    """The photo the chat reads: the upload itself, or a copy with the brush strokes painted on it."""
    return vp.paint(load_image(image), strokes) if image and strokes else image


@user_errors("answer")
def ask(
    question: str, history: list[list[str]] | None, image: str | None = None, strokes: vp.Strokes | None = None
) -> tuple[str, str, Messages, None, str | Image.Image | None]:
    if not question or not question.strip():
        raise gr.Error("Type a question about the image.", title="Could not answer")
    return question, "", _messages(history, (question, THINKING)), None, _model_photo(image, strokes)


@user_errors("regenerate")
def regenerate(
    history: list[list[str]] | None, image: str | None = None, strokes: vp.Strokes | None = None
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
    line = f"**{timings['generate']:.0f} ms** generating on {result['device']}"
    line += f" · preprocessing {timings['preprocess']:.0f} ms"
    if timings["load"] is not None:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    return line + (f" · {result['new_tokens']} tokens" if result["done"] else " · writing…")


def device_notice() -> str:
    """What running the real model on this machine's CPU costs; nothing on a GPU."""
    notice = core_chat.device_notice()
    return f"ℹ️ {notice}" if notice else ""


def build(chat_fn: ChatFn = chat_image) -> None:
    """Lay out the tab inside the current Blocks context."""
    shapes = gr.JSON(value=[], visible=False)
    history = gr.JSON(value=[], visible=False)
    example_marks = gr.JSON(value=None, visible=False)
    pending = gr.State([])
    strokes = gr.State(None)
    asked = gr.Textbox(visible=False)
    painted = image_input(label="Photo", format="png", visible=False)  # what the chat reads: photo + brush
    question = gr.Textbox(
        label="Question",
        placeholder="What is within the red rectangle?",
        lines=2,
        elem_id="chat-question",
        render=False,
    )
    with gr.Row():
        with gr.Column(scale=4):
            with gr.Row():
                image = image_input(label="Photo", height=220, format="png")
                preview = gr.Image(
                    label="What the model sees (336×336)",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=220,
                    elem_id="chat-preview",
                )
            gr.Examples(
                examples=[[example_paths(name)[0], text, marks] for name, marks, text in EXAMPLES],
                inputs=[image, question, example_marks],
                label="Examples (a photo, marks and a question)",
            )
            mode = gr.Radio(
                choices=[("Click shapes", "shapes"), ("Brush", "brush")],
                value="shapes",
                label="Draw with",
                info="Place shapes with clicks, or paint free-hand scribbles with a brush (both end up in the image).",
                elem_id="chat-mode",
            )
            # The brush panel is only hidden, never unmounted: gradio 6.31's editor ignores the first
            # change it reports, which is its own reset when it mounts empty (before any photo),
            # but would be the user's first stroke if it mounted with a photo already in it.
            with gr.Group(elem_id="chat-shapes-panel") as shapes_panel:
                canvas = gr.Image(
                    label="Click to draw",
                    type="pil",
                    format="png",
                    interactive=False,
                    height=420,
                    elem_id="chat-canvas",
                )
                kind = gr.Radio(choices=KIND_CHOICES, value="rectangle", label="Shape", elem_id="chat-kind")
                with gr.Row():
                    finish = gr.Button("Finish scribble", size="sm")
                    undo_button = gr.Button("Undo", size="sm")
            with gr.Group(visible="hidden", elem_id="chat-brush-panel") as brush_panel:
                brush = SketchUpload(
                    label="Paint scribbles",
                    interactive=True,
                    sources=(),
                    transforms=(),
                    layers=False,
                    brush=_brush("red"),
                    format="png",
                    buttons=[],
                    height=420,
                    elem_id="chat-brush",
                    placeholder="Upload a photo or pick an example first.",
                )
            color = gr.Radio(
                choices=COLOR_CHOICES, value="red", label="Colour (of shapes and brush)", elem_id="chat-color"
            )
            listing = gr.Markdown(elem_id="chat-marks")
            clear_button = gr.Button("Clear marks", size="sm")
            gr.Markdown(HOW_TO)
        with gr.Column(scale=5):
            notice = gr.Markdown(elem_id="chat-notice")
            fill_on_page_load(notice, device_notice)
            chatbot = gr.Chatbot(label="ViP-LLaVA", height=460, elem_id="chat-bot", buttons=["copy"])
            question.render()
            with gr.Row():
                send = gr.Button("Send", variant="primary")
                stop_button = gr.Button("Stop", variant="stop")
                regenerate_button = gr.Button("Regenerate")
                clear_chat_button = gr.Button("Clear chat")
            with gr.Accordion("Decoding", open=False):
                temperature = gr.Slider(
                    0, 2, value=DEFAULTS.temperature, step=0.05, label="Temperature", info="0 = greedy"
                )
                top_p = gr.Slider(0.05, 1, value=DEFAULTS.top_p, step=0.05, label="Top-p")
                max_new_tokens = gr.Slider(
                    1, get_settings().chat_max_new_tokens, value=DEFAULTS.max_new_tokens, step=1, label="Max new tokens"
                )
                seed = gr.Number(value=DEFAULTS.seed, precision=0, minimum=0, maximum=core_chat.MAX_SEED, label="Seed")
            timing = gr.Markdown(elem_id="chat-timing")
            with gr.Accordion("Result as JSON (what the API returns)", open=False):
                result = gr.JSON(show_label=False)

    drawing = [shapes, pending, canvas, preview, listing]
    private: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    # neither the brush panel nor the group around it may ever take a loading status: see SketchUpload
    to_brush: dict[str, Any] = {**private, "show_progress_on": [listing]}

    def read_brush(image: str | None, shapes: Marks, pending: Points, color: str, request: gr.Request) -> tuple:
        return brush_changed(image, brush.painted_layers(request), shapes, pending, color)

    def on_new_image(image: str | None, example_marks: Marks, color: str, request: gr.Request) -> tuple:
        brush.forget(request)
        return new_image(image, example_marks, color)

    def on_clear_marks(image: str | None, color: str, request: gr.Request) -> tuple:
        brush.forget(request)
        return clear_marks(image, color)

    def on_clear_brush(image: str | None, shapes: Marks, pending: Points, color: str, request: gr.Request) -> tuple:
        brush.forget(request)
        return restore_brush(image, shapes, pending, color)

    image.change(
        on_new_image,
        inputs=[image, example_marks, color],
        outputs=[*drawing, history, chatbot, result, example_marks, strokes, brush],
        **to_brush,
    )
    canvas.select(add_click, inputs=[image, shapes, pending, kind, color, strokes], outputs=drawing, **private)
    finish.click(finish_scribble, inputs=[image, shapes, pending, color, strokes], outputs=drawing, **private)
    undo_button.click(undo, inputs=[image, shapes, pending, color, strokes], outputs=drawing, **private)
    clear_button.click(on_clear_marks, inputs=[image, color], outputs=[*drawing, strokes, brush], **to_brush)
    brush.change(
        read_brush,
        inputs=[image, shapes, pending, color],
        outputs=[strokes, canvas, preview, listing],
        trigger_mode="always_last",
        **private,
    )
    brush.clear(
        on_clear_brush,
        inputs=[image, shapes, pending, color],
        outputs=[strokes, canvas, preview, listing, brush],
        **to_brush,
    )
    color.change(brush_color, inputs=color, outputs=brush, **to_brush)
    mode.change(show_panels, inputs=mode, outputs=[shapes_panel, brush_panel], show_progress_on=[mode], **private)
    result.change(show_partial, inputs=result, outputs=chatbot, **private)
    result.change(timing_line, inputs=result, outputs=timing, **private)

    answer_inputs = [painted, shapes, history, asked, temperature, top_p, max_new_tokens, seed]
    asking = send.click(
        ask, inputs=[question, history, image, strokes], outputs=[asked, question, chatbot, result, painted], **private
    )
    answering = asking.success(
        chat_fn, inputs=answer_inputs, outputs=result, api_name="chat", concurrency_id="models", show_progress="hidden"
    )
    answering.then(settle, inputs=[result, history], outputs=[history, chatbot], **private)
    redo = regenerate_button.click(
        regenerate, inputs=[history, image, strokes], outputs=[history, asked, chatbot, result, painted], **private
    )
    reanswering = redo.success(
        chat_fn,
        inputs=answer_inputs,
        outputs=result,
        api_visibility="private",
        concurrency_id="models",
        show_progress="hidden",
    )
    reanswering.then(settle, inputs=[result, history], outputs=[history, chatbot], **private)
    stop_button.click(
        stop, inputs=[result, history], outputs=[history, chatbot], cancels=[answering, reanswering], **private
    )
    clear_chat_button.click(
        clear_chat, outputs=[history, chatbot, result, question], cancels=[answering, reanswering], **private
    )


def create_demo(chat_fn: ChatFn = chat_image) -> gr.Blocks:
    with gr.Blocks(title="Visual chat") as demo:
        build(chat_fn)
    return demo


if __name__ == "__main__":
    create_demo().queue().launch()
