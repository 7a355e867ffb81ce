"""Visual chat tab, in three sub-tabs. ViP-LLaVA: place boxes, ellipses, arrows, points and scribbles on
a photo with clicks, paint free-hand scribbles with a brush, see the image ViP-LLaVA will read, and chat
about the marks with answers streaming token by token. Quick answers (VisualBERT): top answers and the
detected regions of a photo. Ask both: one question to each, side by side.

  handlers.py       the chat endpoint and the plain functions behind every event
  layout.py         the components and examples
  wiring.py         which handler runs on which event
  quick_answers.py  the VisualBERT sub-tab (endpoints /vqa and /detect_regions)
  ask_both.py       the side-by-side sub-tab
"""

from __future__ import annotations

import gradio as gr

from tabs.chat import ask_both, quick_answers
from tabs.chat.handlers import (
    ChatFn,
    ask,
    brush_changed,
    brush_color,
    chat_image,
    clear_marks,
    editor_size,
    new_image,
    render,
    undo,
)
from tabs.chat.layout import lay_out
from tabs.chat.quick_answers import VqaFn, answer_question, detect_regions
from tabs.chat.wiring import wire
from tabs.components import standalone

__all__ = [
    "answer_question",
    "ask",
    "brush_changed",
    "brush_color",
    "build",
    "chat_image",
    "clear_marks",
    "create_demo",
    "detect_regions",
    "editor_size",
    "new_image",
    "render",
    "undo",
]


def build(chat_fn: ChatFn = chat_image, vqa_fn: VqaFn = answer_question, regions_fn: VqaFn = detect_regions) -> None:
    """Lay out the tab's sub-tabs inside the current Blocks context and wire their events."""
    with gr.Tabs(elem_id="chat-subtabs"):
        with gr.Tab("ViP-LLaVA", id="chat-vip-llava", elem_id="chat-vip-llava"):
            chat = lay_out()
            wire(chat, chat_fn)
        with gr.Tab("Quick answers (VisualBERT)", id="chat-vqa", elem_id="chat-vqa"):
            quick_answers.build(vqa_fn, regions_fn)
        with gr.Tab("Ask both", id="chat-both", elem_id="chat-both"):
            ask_both.build(chat, chat_fn, vqa_fn)


def create_demo(
    chat_fn: ChatFn = chat_image, vqa_fn: VqaFn = answer_question, regions_fn: VqaFn = detect_regions
) -> gr.Blocks:
    return standalone("Visual chat", build, chat_fn, vqa_fn, regions_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
