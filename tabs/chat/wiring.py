"""The Visual chat tab's events: which handler runs on which change, with which components."""

from __future__ import annotations

from typing import Any

import gradio as gr

from tabs.chat.handlers import (
    ChatFn,
    Marks,
    Points,
    add_click,
    ask,
    brush_changed,
    brush_color,
    clear_chat,
    clear_marks,
    finish_scribble,
    new_image,
    regenerate,
    restore_brush,
    settle,
    show_panels,
    show_partial,
    stop,
    timing_line,
    undo,
)
from tabs.chat.layout import ChatLayout


def wire(layout: ChatLayout, chat_fn: ChatFn) -> None:
    """Connect the components of `layout` to the handlers; `chat_fn` answers (the `chat` endpoint)."""
    drawing = [layout.shapes, layout.pending, layout.canvas, layout.preview, layout.listing]
    # helper events: hidden from the API, outside the queue, no loading status
    quiet: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    # neither the brush panel nor the group around it may ever take a loading status: see SketchUpload
    brush_safe: dict[str, Any] = {**quiet, "show_progress_on": [layout.listing]}

    def read_brush(image: str | None, shapes: Marks, pending: Points, color: str, request: gr.Request) -> tuple:
        return brush_changed(image, layout.brush.painted_layers(request), shapes, pending, color)

    def on_new_image(image: str | None, example_marks: Marks, color: str, request: gr.Request) -> tuple:
        layout.brush.forget(request)
        return new_image(image, example_marks, color)

    def on_clear_marks(image: str | None, color: str, request: gr.Request) -> tuple:
        layout.brush.forget(request)
        return clear_marks(image, color)

    def on_clear_brush(image: str | None, shapes: Marks, pending: Points, color: str, request: gr.Request) -> tuple:
        layout.brush.forget(request)
        return restore_brush(image, shapes, pending, color)

    layout.image.change(
        on_new_image,
        inputs=[layout.image, layout.example_marks, layout.color],
        outputs=[
            *drawing,
            layout.history,
            layout.chatbot,
            layout.result,
            layout.example_marks,
            layout.strokes,
            layout.brush,
        ],
        **brush_safe,
    )
    layout.canvas.select(
        add_click,
        inputs=[layout.image, layout.shapes, layout.pending, layout.kind, layout.color, layout.strokes],
        outputs=drawing,
        **quiet,
    )
    layout.finish.click(
        finish_scribble,
        inputs=[layout.image, layout.shapes, layout.pending, layout.color, layout.strokes],
        outputs=drawing,
        **quiet,
    )
    layout.undo_button.click(
        undo,
        inputs=[layout.image, layout.shapes, layout.pending, layout.color, layout.strokes],
        outputs=drawing,
        **quiet,
    )
    layout.clear_button.click(
        on_clear_marks,
        inputs=[layout.image, layout.color],
        outputs=[*drawing, layout.strokes, layout.brush],
        **brush_safe,
    )
    layout.brush.change(
        read_brush,
        inputs=[layout.image, layout.shapes, layout.pending, layout.color],
        outputs=[layout.strokes, layout.canvas, layout.preview, layout.listing],
        trigger_mode="always_last",
        **quiet,
    )
    layout.brush.clear(
        on_clear_brush,
        inputs=[layout.image, layout.shapes, layout.pending, layout.color],
        outputs=[layout.strokes, layout.canvas, layout.preview, layout.listing, layout.brush],
        **brush_safe,
    )
    layout.color.change(brush_color, inputs=layout.color, outputs=layout.brush, **brush_safe)
    layout.mode.change(
        show_panels,
        inputs=layout.mode,
        outputs=[layout.shapes_panel, layout.brush_panel],
        show_progress_on=[layout.mode],
        **quiet,
    )
    layout.result.change(show_partial, inputs=layout.result, outputs=layout.chatbot, **quiet)
    layout.result.change(timing_line, inputs=layout.result, outputs=layout.timing, **quiet)

    answer_inputs = [
        layout.painted,
        layout.shapes,
        layout.history,
        layout.asked,
        layout.temperature,
        layout.top_p,
        layout.max_new_tokens,
        layout.seed,
    ]

    def answer_after(question_set: Any, api: dict[str, Any]) -> Any:
        """Once `question_set` has put the question in place: answer it (streaming), then keep the turn."""
        answering = question_set.success(
            chat_fn, inputs=answer_inputs, outputs=layout.result, concurrency_id="models", show_progress="hidden", **api
        )
        answering.then(
            settle, inputs=[layout.result, layout.history], outputs=[layout.history, layout.chatbot], **quiet
        )
        return answering

    asking = layout.send.click(
        ask,
        inputs=[layout.question, layout.history, layout.image, layout.strokes],
        outputs=[layout.asked, layout.question, layout.chatbot, layout.result, layout.painted],
        **quiet,
    )
    answering = answer_after(asking, {"api_name": "chat"})
    redo = layout.regenerate_button.click(
        regenerate,
        inputs=[layout.history, layout.image, layout.strokes],
        outputs=[layout.history, layout.asked, layout.chatbot, layout.result, layout.painted],
        **quiet,
    )
    reanswering = answer_after(redo, {"api_visibility": "private"})
    layout.stop_button.click(
        stop,
        inputs=[layout.result, layout.history],
        outputs=[layout.history, layout.chatbot],
        cancels=[answering, reanswering],
        **quiet,
    )
    layout.clear_chat_button.click(
        clear_chat,
        outputs=[layout.history, layout.chatbot, layout.result, layout.question],
        cancels=[answering, reanswering],
        **quiet,
    )
