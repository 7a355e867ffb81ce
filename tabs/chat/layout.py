"""The Visual chat tab's layout: the components, where they sit, and the examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core import checks
from core.settings import get_settings
from tabs.chat.handlers import COLOR_CHOICES, DEFAULTS, KIND_CHOICES, brush_for, device_notice
from tabs.components import SketchUpload, example_paths, fill_on_page_load, image_input

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


@dataclass
class ChatLayout:
    """Every component of the tab (hidden ones hold the conversation and the marks)."""

    shapes: Any
    history: Any
    example_marks: Any
    pending: Any
    strokes: Any
    asked: Any
    painted: Any
    question: Any
    image: Any
    preview: Any
    mode: Any
    shapes_panel: Any
    canvas: Any
    kind: Any
    finish: Any
    undo_button: Any
    brush_panel: Any
    brush: Any
    color: Any
    listing: Any
    clear_button: Any
    notice: Any
    chatbot: Any
    send: Any
    stop_button: Any
    regenerate_button: Any
    clear_chat_button: Any
    temperature: Any
    top_p: Any
    max_new_tokens: Any
    seed: Any
    timing: Any
    result: Any


def _drawn_image(label: str, height: int, elem_id: str) -> gr.Image:
    """A picture the handlers draw (PIL in, PNG to the page: the marks' colours stay exact)."""
    return gr.Image(label=label, type="pil", format="png", interactive=False, height=height, elem_id=elem_id)


def lay_out() -> ChatLayout:
    """Lay out the tab inside the current Blocks context; the components, for wiring."""
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
                preview = _drawn_image("What the model sees (336×336)", 220, "chat-preview")
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
                canvas = _drawn_image("Click to draw", 420, "chat-canvas")
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
                    brush=brush_for("red"),
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
                seed = gr.Number(value=DEFAULTS.seed, precision=0, minimum=0, maximum=checks.MAX_SEED, label="Seed")
            timing = gr.Markdown(elem_id="chat-timing")
            with gr.Accordion("Result as JSON (what the API returns)", open=False):
                result = gr.JSON(show_label=False)
    return ChatLayout(
        shapes=shapes,
        history=history,
        example_marks=example_marks,
        pending=pending,
        strokes=strokes,
        asked=asked,
        painted=painted,
        question=question,
        image=image,
        preview=preview,
        mode=mode,
        shapes_panel=shapes_panel,
        canvas=canvas,
        kind=kind,
        finish=finish,
        undo_button=undo_button,
        brush_panel=brush_panel,
        brush=brush,
        color=color,
        listing=listing,
        clear_button=clear_button,
        notice=notice,
        chatbot=chatbot,
        send=send,
        stop_button=stop_button,
        regenerate_button=regenerate_button,
        clear_chat_button=clear_chat_button,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        timing=timing,
        result=result,
    )
