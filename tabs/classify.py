"""Classify tab: one image, one or several ImageNet classifiers side by side; and a Zero-shot sub-tab
(tabs/zero_shot.py) for your own labels and search by text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core import classify as core_classify
from core.images import load_image
from core.settings import get_settings
from tabs import zero_shot
from tabs.components import (
    about_models,
    api_json,
    beside_photo,
    model_picker,
    on_gpu,
    run_model,
    standalone,
    ui_only,
    user_errors,
)

DEFAULT_MODELS = ["beit-base-224", "levit-128S", "perceiver-conv"]
ClassifyFn = Callable[..., dict[str, Any]]


@user_errors("classify the image")
@on_gpu(duration=60)
def classify_image(
    image: str | None, models: list[str], top_k: float, progress: gr.Progress = gr.Progress()
) -> dict[str, Any]:
    """Classify an image with one or several ImageNet models.

    Args:
        image: the image to classify (any common format).
        models: registry keys of the models to run, e.g. ["beit-base-224", "levit-128S"].
        top_k: how many labels to return per model (1-20).

    Returns:
        {"predictions": {model: [{"label", "score"}]}, "heads": {model: {head: [...]}} for LeViT,
        "timings_ms": {model: {"preprocess", "inference", "load"}}, "models": {...}, "summary": str}
    """
    rgb = load_image(image)
    result = core_classify.classify(rgb, models, top_k, progress=lambda f, m: progress(f, desc=m))
    return result.to_dict()


def _timing_line(timings: dict[str, Any], device: str) -> str:
    line = f"**{timings['inference']:.0f} ms** on {device}"
    if timings["preprocess"]:
        line += f" · preprocessing {timings['preprocess']:.0f} ms"
    else:
        line += " · preprocessing shared"
    if timings["load"] is not None:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    return line


def _as_label(predictions: list[dict[str, Any]]) -> dict[str, float]:
    return {p["label"]: p["score"] for p in predictions}


def build_imagenet(classify_fn: ClassifyFn = classify_image) -> None:
    """Lay out the ImageNet classifiers inside the current Blocks context."""
    specs = core_classify.classify_models()
    with beside_photo("chelsea.jpg", "coffee.jpg", "grace_hopper.jpg", "astronaut.jpg") as image:
        models = model_picker(
            specs,
            DEFAULT_MODELS,
            "Pick one or several to compare side by side. Each loads on first use.",
            gr.CheckboxGroup,
            label="Models",
        )
        top_k = gr.Slider(1, core_classify.MAX_TOP_K, value=get_settings().default_top_k, step=1, label="Top-k labels")
        run = gr.Button("Classify", variant="primary")
        about_models(specs)
    summary = gr.Markdown(elem_id="classify-summary")
    cards = gr.Column()
    result = api_json("classify")

    with cards:

        @gr.render(inputs=result)
        def show_cards(data: dict[str, Any] | None) -> None:
            if not data:
                return
            with gr.Row(equal_height=False):
                for key, predictions in data["predictions"].items():
                    info = data["models"][key]
                    with gr.Column(min_width=260, elem_classes="model-card"):
                        gr.Label(_as_label(predictions), label=info["name"], num_top_classes=len(predictions))
                        gr.Markdown(_timing_line(data["timings_ms"][key], info["device"]))
                        heads = data["heads"].get(key)
                        if heads:
                            with gr.Accordion("Class head, distillation head and their mean", open=False):
                                for head, head_predictions in heads.items():
                                    gr.Label(_as_label(head_predictions), label=head, num_top_classes=3)

    ui_only(image.change, lambda: (None, ""), outputs=[result, summary])
    run_model(run, classify_fn, [image, models, top_k], result, "classify", summary).success(
        lambda data: data["summary"], inputs=result, outputs=summary, api_visibility="private"
    )


def build(
    classify_fn: ClassifyFn = classify_image,
    zero_shot_fn: zero_shot.ZeroShotFn = zero_shot.zero_shot_classify,
    search_fn: zero_shot.ZeroShotFn = zero_shot.search_images,
    captions_fn: zero_shot.ZeroShotFn = zero_shot.rank_captions,
) -> None:
    """Lay out the tab inside the current Blocks context: ImageNet classifiers, then zero-shot labels."""
    with gr.Tabs(elem_id="classify-tabs"):
        with gr.Tab("ImageNet classifiers", id="classify-imagenet", elem_id="tab-classify-imagenet"):
            build_imagenet(classify_fn)
        with gr.Tab("Zero-shot", id="classify-zero-shot", elem_id="tab-classify-zero-shot"):
            zero_shot.build(zero_shot_fn, search_fn, captions_fn)


def create_demo(classify_fn: ClassifyFn = classify_image) -> gr.Blocks:
    return standalone("Classify", build, classify_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
