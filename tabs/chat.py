"""Visual chat tab: draw boxes, ellipses, arrows, points and scribbles on a photo, see the image
ViP-LLaVA will read, and chat about the marks with answers streaming token by token."""

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
from tabs.components import example_paths, image_input, on_gpu, user_errors

DEFAULTS = ChatOptions()
KIND_CHOICES = [
    ("Rectangle", "rectangle"),
    ("Ellipse", "ellipse"),
    ("Arrow", "arrow"),
    ("Point", "point"),
    ("Scribble", "scribble"),
]
COLOR_CHOICES = list(vp.COLORS)
HOW_TO = (
    "**Click on the image to mark it.** Rectangle and ellipse: two opposite corners. Arrow: its tail, then "
    "its head (the tip touches the object). Point: one click. Scribble: click along the stroke, then "
    "*Finish scribble*. Ask about the marks the way ViP-LLaVA learned them: *the object within the red "
    "rectangle*, *pointed to by the lime arrow*, *at the blue point*, *with the yellow scribble*."
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


@user_errors("draw the marks")
def render(
    image: str | None, shapes: list[dict[str, Any]] | None, pending: list[list[float]], color: str
) -> tuple[Image.Image | None, Image.Image | None, str]:
    """The drawing canvas (marks plus the clicks of an unfinished one) and exactly what the model sees."""
    if not image:
        return None, None, ""
    rgb = load_image(image)
    marks = vp.parse_shapes(shapes, rgb.size)
    canvas = vp.draw_pending(vp.draw(rgb, marks), [tuple(p) for p in pending], color)
    listing = " · ".join(f"mark {i}: {_describe(shape)}" for i, shape in enumerate(marks, start=1))
    listing = listing or "No marks yet."
    if pending:
        listing += f" · {len(pending)} click{'s' if len(pending) > 1 else ''} of the next mark placed"
    return canvas, core_chat.model_view(rgb, marks), listing


def _render_all(image: str | None, shapes: list[dict[str, Any]], pending: list[list[float]], color: str) -> tuple:
    canvas, preview, listing = render(image, shapes, pending, color)
    return shapes, pending, canvas, preview, listing


@user_errors("add the mark")
def add_click(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    pending: list[list[float]] | None,
    kind: str,
    color: str,
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
    return _render_all(image, shapes, pending, color)


@user_errors("finish the scribble")
def finish_scribble(
    image: str | None, shapes: list[dict[str, Any]] | None, pending: list[list[float]] | None, color: str
) -> tuple:
    if not image or len(pending or []) < 2:
        raise InputError("Click at least two points along the scribble first.")
    shapes = [*(shapes or []), {"kind": "scribble", "color": color, "points": pending}]
    vp.parse_shapes(shapes, load_image(image).size)
    return _render_all(image, shapes, [], color)


def undo(
    image: str | None, shapes: list[dict[str, Any]] | None, pending: list[list[float]] | None, color: str
) -> tuple:
    if pending:
        return _render_all(image, list(shapes or []), [], color)
    return _render_all(image, list(shapes or [])[:-1], [], color)


def clear_marks(image: str | None, color: str) -> tuple:
    return _render_all(image, [], [], color)


def new_image(image: str | None, example_marks: list[dict[str, Any]] | None, color: str) -> tuple:
    """A new image starts a new conversation, with no marks (or an example's)."""
    return (*_render_all(image, list(example_marks or []), [], color), [], [], None, None)


def ask(question: str, history: list[list[str]] | None) -> tuple[str, str, Messages, None]:
    if not question or not question.strip():
        raise gr.Error("Type a question about the image.", title="Could not answer")
    return question, "", _messages(history, (question, THINKING)), None


def regenerate(history: list[list[str]] | None) -> tuple[list[list[str]], str, Messages, None]:
    if not history:
        raise gr.Error("There is no answer to regenerate yet.", title="Could not regenerate")
    *kept, (question, _) = history
    return kept, question, _messages(kept, (question, THINKING)), None


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


def build(chat_fn: ChatFn = chat_image) -> None:
    """Lay out the tab inside the current Blocks context."""
    notice = core_chat.device_notice()
    shapes = gr.JSON(value=[], visible=False)
    history = gr.JSON(value=[], visible=False)
    example_marks = gr.JSON(value=None, visible=False)
    pending = gr.State([])
    asked = gr.Textbox(visible=False)
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
            canvas = gr.Image(
                label="Click to draw", type="pil", format="png", interactive=False, height=420, elem_id="chat-canvas"
            )
            gr.Markdown(HOW_TO)
            listing = gr.Markdown(elem_id="chat-marks")
            kind = gr.Radio(choices=KIND_CHOICES, value="rectangle", label="Shape", elem_id="chat-kind")
            color = gr.Radio(choices=COLOR_CHOICES, value="red", label="Colour", elem_id="chat-color")
            with gr.Row():
                finish = gr.Button("Finish scribble", size="sm")
                undo_button = gr.Button("Undo", size="sm")
                clear_button = gr.Button("Clear marks", size="sm")
        with gr.Column(scale=5):
            if notice:
                gr.Markdown(f"ℹ️ {notice}", elem_id="chat-notice")
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
    image.change(
        new_image,
        inputs=[image, example_marks, color],
        outputs=[*drawing, history, chatbot, result, example_marks],
        **private,
    )
    canvas.select(add_click, inputs=[image, shapes, pending, kind, color], outputs=drawing, **private)
    finish.click(finish_scribble, inputs=[image, shapes, pending, color], outputs=drawing, **private)
    undo_button.click(undo, inputs=[image, shapes, pending, color], outputs=drawing, **private)
    clear_button.click(clear_marks, inputs=[image, color], outputs=drawing, **private)
    result.change(show_partial, inputs=result, outputs=chatbot, **private)
    result.change(timing_line, inputs=result, outputs=timing, **private)

    answer_inputs = [image, shapes, history, asked, temperature, top_p, max_new_tokens, seed]
    asking = send.click(ask, inputs=[question, history], outputs=[asked, question, chatbot, result], **private)
    answering = asking.success(
        chat_fn, inputs=answer_inputs, outputs=result, api_name="chat", concurrency_id="models", show_progress="hidden"
    )
    answering.then(settle, inputs=[result, history], outputs=[history, chatbot], **private)
    redo = regenerate_button.click(regenerate, inputs=history, outputs=[history, asked, chatbot, result], **private)
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
