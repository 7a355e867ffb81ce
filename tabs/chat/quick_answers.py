"""The "Quick answers (VisualBERT)" sub-tab of Visual chat: a photo and a short question, VisualBERT's
top answers, and the Visual Genome regions it read drawn on the photo ("red cup"), with a score
threshold and a count. Endpoints `/vqa` and `/detect_regions`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from core import vqa as core_vqa
from core.images import load_image
from tabs.components import example_paths, image_input, on_gpu, user_errors

VqaFn = Callable[..., dict[str, Any]]
DEFAULT_TOP_K = 5
DEFAULT_REGIONS_SHOWN = 10
LIMITS = (
    "**How good are these answers?** VisualBERT picks one of 3129 short VQA v2 answers from the regions "
    "the Visual Genome Faster R-CNN finds. Run this way (transformers' own VisualBERT demo pipeline) it "
    "answers about **46%** of VQA v2 validation questions right "
    "([transformers issue 17360](https://github.com/huggingface/transformers/issues/17360)): VisualBERT was "
    "fine-tuned on the features of another detector, and this one's differ "
    "([issue 8769](https://github.com/huggingface/transformers/issues/8769)). It knows English only and reads "
    "the first 18 word pieces of a question. The NLVR2 and VCR checkpoints of VisualBERT read features of "
    "other sizes (1024 and 512) and are not offered."
)
EXAMPLES = [
    ("chelsea.jpg", "What animal is this?"),
    ("coffee.jpg", "What is in the cup?"),
    ("astronaut.jpg", "What is the person wearing?"),
]
TABLE_HEADERS = ["#", "region", "score", "attribute score", "box (x0, y0, x1, y1)"]


@user_errors("answer")
@on_gpu(duration=60)
def answer_question(
    image: str | None, question: str, top_k: float = DEFAULT_TOP_K, progress: gr.Progress = gr.Progress()
) -> dict[str, Any]:
    """Answer a short question about a photo with VisualBERT (VQA v2), reading the object regions a Visual
    Genome Faster R-CNN finds. The regions of a photo are kept, so a second question about the same photo
    runs VisualBERT only.

    Args:
        image: the photo (any common format).
        question: a short question in English, e.g. "What color is the cup?" (at most 18 word pieces are read).
        top_k: how many answers to return (1-20).

    Returns:
        {"question", "answers": [{"answer", "score"}] best first, "regions": [{"box": [x0, y0, x1, y1] in
        photo pixels, "object", "attribute", "score", "attribute_score", "object_id", "attribute_id"}] best
        first, "image_size", "score_threshold" (the detector's), "timings_ms": {"detect" (None when the
        regions came from the cache), "answer", "load_detector", "load_vqa"}, "regions_from_cache",
        "question_tokens", "notes", "models", "device"}
    """
    rgb = load_image(image)
    result = core_vqa.ask(rgb, question, top_k, progress=lambda f, m: progress(f, desc=m))
    return result.to_dict()


@user_errors("find the regions")
@on_gpu(duration=60)
def detect_regions(image: str | None) -> dict[str, Any]:
    """Find the object regions of a photo with the Visual Genome Faster R-CNN (1600 objects, 400
    attributes): the regions VisualBERT reads.

    Args:
        image: the photo (any common format).

    Returns:
        {"regions": [{"box": [x0, y0, x1, y1] in photo pixels, "object", "attribute", "score",
        "attribute_score", "object_id", "attribute_id"}] best first, "image_size", "score_threshold",
        "timings_ms": {"detect" (None when from the cache), "load"}, "regions_from_cache", "notes", "model",
        "device"}
    """
    return core_vqa.detect(load_image(image)).to_dict()


def as_label(result: dict[str, Any] | None) -> dict[str, float] | None:
    if not result or "answers" not in result:
        return None
    return {a["answer"]: a["score"] for a in result["answers"]}


def timing_line(result: dict[str, Any] | None) -> str:
    if not result:
        return ""
    timings = result["timings_ms"]
    parts = []
    if "answer" in timings:
        parts.append(f"**VisualBERT {timings['answer']:.0f} ms**")
    if result["regions_from_cache"]:
        parts.append("regions from the cache (the detector did not run)")
    else:
        parts.append(f"detector {timings['detect'] / 1000:.1f} s")
    for key, what in (("load_detector", "detector"), ("load_vqa", "VisualBERT"), ("load", "detector")):
        if timings.get(key) is not None:
            parts.append(f"{what} loaded in {timings[key] / 1000:.1f} s")
    line = " · ".join(parts) + f" · on {result['device']}"
    return "\n\n".join([line, *(f"ℹ️ {note}" for note in result["notes"])])


@user_errors("draw the regions")
def show_regions(
    image: str | None, result: dict[str, Any] | None, score_threshold: float, count: float
) -> tuple[Image.Image | None, list[list[Any]], str]:
    """The photo with the regions scoring at least `score_threshold` (the best `count`), their table, and
    a line saying how many are shown."""
    if not image or not result:
        return None, [], ""
    shown = core_vqa.visible_regions(result["regions"], float(score_threshold), int(count))
    drawn = core_vqa.draw_regions(load_image(image), shown)
    rows = [
        [
            number,
            f"{r['attribute']} {r['object']}",
            r["score"],
            r["attribute_score"],
            ", ".join(f"{v:g}" for v in r["box"]),
        ]
        for number, r in enumerate(shown, start=1)
    ]
    total = len(result["regions"])
    line = (
        f"{len(shown)} of the {total} regions VisualBERT read score {float(score_threshold):g} or more and are shown."
    )
    if total and not shown:
        line += " Lower the score threshold to see the others."
    return drawn, rows, line


@dataclass
class QuickLayout:
    image: Any
    question: Any
    top_k: Any
    ask: Any
    find: Any
    answers: Any
    timing: Any
    drawn: Any
    threshold: Any
    count: Any
    shown: Any
    table: Any
    result: Any


def lay_out() -> QuickLayout:
    with gr.Row():
        with gr.Column(scale=4):
            image = image_input(label="Photo", height=300, elem_id="vqa-photo")
            question = gr.Textbox(
                label="Question", placeholder="What color is the cup?", lines=1, max_lines=3, elem_id="vqa-question"
            )
            gr.Examples(
                examples=[[example_paths(name)[0], text] for name, text in EXAMPLES],
                inputs=[image, question],
                label="Examples (a photo and a question)",
            )
            with gr.Row():
                ask = gr.Button("Answer", variant="primary", elem_id="vqa-ask")
                find = gr.Button("Find regions only", elem_id="vqa-find")
            top_k = gr.Slider(1, core_vqa.MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Answers shown (top-k)")
            gr.Markdown(LIMITS, elem_id="vqa-limits")
        with gr.Column(scale=5):
            answers = gr.Label(label="VisualBERT's answers", num_top_classes=core_vqa.MAX_TOP_K, elem_id="vqa-answers")
            timing = gr.Markdown(elem_id="vqa-timing")
            drawn = gr.Image(
                label="Regions (attribute, object, score)",
                type="pil",
                format="png",
                interactive=False,
                elem_id="vqa-regions",
            )
            with gr.Row():
                threshold = gr.Slider(0, 1, value=0.2, step=0.01, label="Score threshold", elem_id="vqa-threshold")
                count = gr.Slider(
                    1, 36, value=DEFAULT_REGIONS_SHOWN, step=1, label="Regions shown", elem_id="vqa-count"
                )
            shown = gr.Markdown(elem_id="vqa-shown")
            table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="vqa-table", wrap=True)
            with gr.Accordion("Result as JSON (what the API returns)", open=False):
                result = gr.JSON(show_label=False)
    return QuickLayout(
        image, question, top_k, ask, find, answers, timing, drawn, threshold, count, shown, table, result
    )


def wire(layout: QuickLayout, vqa_fn: VqaFn, regions_fn: VqaFn) -> None:
    quiet: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    display_inputs = [layout.image, layout.result, layout.threshold, layout.count]
    display_outputs = [layout.drawn, layout.table, layout.shown]

    def show(event: Any) -> None:
        event.success(
            lambda result: (as_label(result), timing_line(result)),
            inputs=layout.result,
            outputs=[layout.answers, layout.timing],
            **quiet,
        ).then(show_regions, inputs=display_inputs, outputs=display_outputs, **quiet)

    def threshold_of(result: dict[str, Any] | None) -> Any:
        return gr.skip() if not result else result["score_threshold"]

    heavy: dict[str, Any] = {"concurrency_id": "models", "show_progress_on": [layout.timing]}
    show(
        layout.ask.click(
            vqa_fn, inputs=[layout.image, layout.question, layout.top_k], outputs=layout.result, api_name="vqa", **heavy
        )
    )
    show(
        layout.question.submit(
            vqa_fn,
            inputs=[layout.image, layout.question, layout.top_k],
            outputs=layout.result,
            api_visibility="private",
            **heavy,
        )
    )
    show(layout.find.click(regions_fn, inputs=layout.image, outputs=layout.result, api_name="detect_regions", **heavy))
    layout.result.change(threshold_of, inputs=layout.result, outputs=layout.threshold, **quiet)
    for slider in (layout.threshold, layout.count):
        slider.change(show_regions, inputs=display_inputs, outputs=display_outputs, **quiet)
    layout.image.change(
        lambda: (None, "", None, [], "", None),
        outputs=[layout.answers, layout.timing, layout.drawn, layout.table, layout.shown, layout.result],
        **quiet,
    )


def build(vqa_fn: VqaFn = answer_question, regions_fn: VqaFn = detect_regions) -> QuickLayout:
    layout = lay_out()
    wire(layout, vqa_fn, regions_fn)
    return layout
