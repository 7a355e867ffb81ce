"""The "Ask both" sub-tab of Visual chat: one question to ViP-LLaVA (the photo and the marks of the
ViP-LLaVA sub-tab) and to VisualBERT (the same photo, without the marks it cannot read), side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image

from core import vqa as core_vqa
from core.errors import InputError
from core.images import load_image
from tabs.chat.handlers import DEFAULTS, ChatFn, _model_photo, render
from tabs.chat.layout import ChatLayout
from tabs.chat.quick_answers import VqaFn, as_label, timing_line
from tabs.components import user_errors

HOW = (
    "Asks the photo of the **ViP-LLaVA** tab, with the marks drawn there, one question (a new conversation, "
    "the decoding settings of that tab's defaults), and VisualBERT the same question about the same photo "
    "without the marks: its detector would take them for objects. VisualBERT answers in a word or two "
    "from a fixed list; ViP-LLaVA writes."
)


def _photo(image: str | None) -> str:
    if not image:
        raise InputError("Upload a photo (and draw marks if you like) in the ViP-LLaVA tab first.")
    return image


@user_errors("ask ViP-LLaVA")
def ask_vip_llava(
    image: str | None,
    shapes: list[dict[str, Any]] | None,
    strokes: Any,
    question: str,
    chat_fn: ChatFn,
) -> Iterator[tuple[str, Image.Image | None]]:
    """ViP-LLaVA's answer as it streams, beside the photo with its marks."""
    photo = _photo(image)
    canvas, _, _ = render(photo, shapes, [], "red", strokes)
    yield "…", canvas
    for result in chat_fn(
        _model_photo(photo, strokes),
        shapes or [],
        [],
        question,
        DEFAULTS.temperature,
        DEFAULTS.top_p,
        DEFAULTS.max_new_tokens,
        DEFAULTS.seed,
    ):
        yield result["answer"] or "…", canvas


def _no_progress(*args: Any, **kwargs: Any) -> None:
    pass


@user_errors("ask VisualBERT")
def ask_visualbert(
    image: str | None, question: str, vqa_fn: VqaFn
) -> tuple[dict[str, float] | None, Image.Image | None, str]:
    """VisualBERT's top answers, its ten best regions drawn on the photo, and the timings."""
    photo = _photo(image)
    result = vqa_fn(photo, question, 5, progress=_no_progress)
    shown = core_vqa.visible_regions(result["regions"], result["score_threshold"], 10)
    return as_label(result), core_vqa.draw_regions(load_image(photo), shown), timing_line(result)


def build(chat: ChatLayout, chat_fn: ChatFn, vqa_fn: VqaFn) -> None:
    question = gr.Textbox(
        label="Question for both", placeholder="What is within the red rectangle?", elem_id="both-question"
    )
    ask = gr.Button("Ask both", variant="primary", elem_id="both-ask")
    gr.Markdown(HOW)
    with gr.Row(equal_height=False):
        with gr.Column(elem_classes="model-card"):
            gr.Markdown("**ViP-LLaVA** (writes its answer)")
            vip_answer = gr.Markdown(elem_id="both-vip", container=True)
            vip_view = gr.Image(label="ViP-LLaVA reads (photo and marks)", type="pil", interactive=False, height=300)
        with gr.Column(elem_classes="model-card"):
            gr.Markdown("**VisualBERT** (picks from 3129 short answers)")
            vqa_answers = gr.Label(label="VisualBERT", elem_id="both-vqa")
            vqa_timing = gr.Markdown(elem_id="both-vqa-timing")
            vqa_view = gr.Image(label="VisualBERT reads (its regions)", type="pil", interactive=False, height=300)

    def vip(image: str | None, shapes: Any, strokes: Any, text: str) -> Iterator[tuple[str, Image.Image | None]]:
        yield from ask_vip_llava(image, shapes, strokes, text, chat_fn)

    def visualbert(image: str | None, text: str) -> tuple[dict[str, float] | None, Image.Image | None, str]:
        return ask_visualbert(image, text, vqa_fn)

    private: dict[str, Any] = {"api_visibility": "private", "concurrency_id": "models"}
    ask.click(
        vip,
        inputs=[chat.image, chat.shapes, chat.strokes, question],
        outputs=[vip_answer, vip_view],
        show_progress_on=[vip_answer],
        **private,
    )
    ask.click(
        visualbert,
        inputs=[chat.image, question],
        outputs=[vqa_answers, vqa_view, vqa_timing],
        show_progress_on=[vqa_timing],
        **private,
    )
