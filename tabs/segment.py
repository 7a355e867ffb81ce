"""Segment tab: semantic, instance and panoptic segmentation with overlays, a table and downloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from core import segment as core_segment
from core.images import load_image
from tabs.components import (
    about_models,
    api_json,
    beside_photo,
    model_picker,
    on_gpu,
    output_dir,
    run_model,
    standalone,
    ui_only,
    user_errors,
)

DEFAULT_MODEL = "mask2former-swin-small-coco-panoptic"
MODE_INFO = {
    "semantic": "Every pixel gets a class; one segment per class.",
    "instance": "Separate objects (things) with a score each; pixels of no object stay unlabelled.",
    "panoptic": "Objects and stuff (sky, road, wall...) together, each pixel in one segment.",
}
TABLE_HEADERS = ["id", "label", "score", "area %", "bbox (x0, y0, x1, y1)"]
SegmentFn = Callable[..., tuple[dict[str, Any], str, str]]


@user_errors("segment the image")
@on_gpu(duration=60)
def segment_image(
    image: str | None,
    model: str,
    mode: str,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    overlap_threshold: float = 0.8,
    fuse_stuff: bool = True,
    progress: gr.Progress = gr.Progress(),
) -> tuple[dict[str, Any], str, str]:
    """Segment an image: semantic, instance or panoptic, as the chosen model supports.

    Args:
        image: the photo to segment (any common format).
        model: a segment model key, e.g. "mask2former-swin-small-coco-panoptic" or "beit-base-ade-640".
        mode: "semantic", "instance" or "panoptic".
        score_threshold: instance/panoptic: drop segments whose class score is below this (0-1).
        mask_threshold: panoptic: mask probability above which a pixel belongs to a segment (0-1).
        overlap_threshold: panoptic: keep a segment only if this share of its mask survives overlaps (0-1).
        fuse_stuff: panoptic: merge all regions of each stuff class (sky, grass...) into one segment.

    Returns:
        The segments as JSON ({model, mode, image_size, segments: [{id, label, label_id, score, area,
        area_percent, bbox, fused}], timings_ms}), the label map as an index PNG (pixel value = segment
        id, 0 = none) and the same JSON as a file.
    """
    rgb = load_image(image)
    thresholds = core_segment.Thresholds(score_threshold, mask_threshold, overlap_threshold)
    result = core_segment.segment(
        rgb, model, mode, thresholds, fuse_stuff=fuse_stuff, progress=lambda f, m: progress(f, desc=m)
    )
    folder = output_dir("segment")
    label_png = folder / "label-map.png"
    label_png.write_bytes(result.label_map_png())
    segments_json = folder / "segments.json"
    segments_json.write_text(result.to_json(), encoding="utf-8")
    return result.to_dict(), str(label_png), str(segments_json)


@user_errors("show the segmentation")
def render_views(
    image: str | None, data: dict[str, Any] | None, label_png: str | None, opacity: float
) -> tuple[Any, Any, list[list[Any]], str]:
    if not data or not label_png or image is None:
        return None, None, [], ""
    result = core_segment.result_from_dict(data, np.asarray(Image.open(label_png)))
    photo = load_image(image)
    photo_small, masks, colours = core_segment.annotations(result, photo, opacity)
    rows = [
        [s.id, s.label, "–" if s.score is None else round(s.score, 3), round(s.area_percent, 2), str(list(s.bbox))]
        for s in result.segments
    ]
    return (
        gr.AnnotatedImage((photo_small, masks), color_map=colours),
        result.colour_image(),
        rows,
        _summary(data),
    )


def _summary(data: dict[str, Any]) -> str:
    segments = data["segments"]
    width, height = data["image_size"]
    timings = data["timings_ms"]
    line = f"**{len(segments)} segments** ({data['mode']}) in a {width}×{height} image · "
    line += f"model {timings['inference']:.0f} ms, post-processing {timings['postprocess']:.0f} ms"
    if "load" in timings:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    if not segments:
        line += " · nothing passed the thresholds: try lowering them."
    return line


def _mode_controls(model: str, mode: str | None) -> tuple[Any, ...]:
    modes = core_segment.get_spec(model, core_segment.TASK).segment_modes
    mode = mode if mode in modes else modes[0]
    return (gr.Radio(choices=list(modes), value=mode, info=MODE_INFO[mode]), *_threshold_controls(mode))


def _threshold_controls(mode: str) -> tuple[Any, ...]:
    return (
        gr.Accordion(visible=mode != "semantic"),
        gr.Slider(visible=mode != "semantic"),
        gr.Slider(visible=mode == "panoptic"),
        gr.Slider(visible=mode == "panoptic"),
        gr.Checkbox(visible=mode == "panoptic"),
    )


def build(segment_fn: SegmentFn = segment_image) -> None:
    """Lay out the tab inside the current Blocks context."""
    specs = core_segment.segment_models()
    default_modes = core_segment.get_spec(DEFAULT_MODEL).segment_modes
    with beside_photo("astronaut.jpg", "coffee.jpg", "chelsea.jpg", "grace_hopper.jpg") as image:
        model = model_picker(specs, DEFAULT_MODEL, "Each model loads on first use.")
        mode = gr.Radio(
            choices=list(default_modes), value=default_modes[0], label="Mode", info=MODE_INFO[default_modes[0]]
        )
        with gr.Accordion("Thresholds", open=True, visible=default_modes[0] != "semantic") as threshold_box:
            score = gr.Slider(
                0, 1, value=0.5, step=0.01, label="Score threshold", info="Drop segments less certain than this."
            )
            mask = gr.Slider(
                0, 1, value=0.5, step=0.01, label="Mask threshold", info="Mask probability that counts as inside."
            )
            overlap = gr.Slider(
                0,
                1,
                value=0.8,
                step=0.01,
                label="Overlap threshold",
                info="Keep a segment if this share of it survives overlaps.",
            )
            fuse = gr.Checkbox(
                value=True, label="Fuse stuff classes", info="One segment per stuff class (sky, grass, ...)."
            )
        run = gr.Button("Segment", variant="primary")
        about_models(specs, {"modes": lambda spec: ", ".join(spec.segment_modes)})
    summary = gr.Markdown(elem_id="segment-summary")
    with gr.Row():
        with gr.Column(scale=3), gr.Tabs():
            with gr.Tab("Overlay"):
                annotated = gr.AnnotatedImage(label="Segments (hover or click the legend)", height=480)
                opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Opacity")
            with gr.Tab("Colour map"):
                colours = gr.Image(label="Colour map", type="numpy", interactive=False, height=480)
        with gr.Column(scale=2):
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                label="Segments, largest first",
                interactive=False,
                wrap=True,
                column_widths=["9%", "31%", "14%", "14%", "32%"],
            )
            label_png = gr.File(label="Label map (PNG: pixel value = segment id, 0 = none)", interactive=False)
            segments_file = gr.File(label="Segments (JSON)", interactive=False)
    result = api_json()

    mode_controls = [mode, threshold_box, score, mask, overlap, fuse]
    ui_only(model.change, _mode_controls, inputs=[model, mode], outputs=mode_controls)
    ui_only(mode.change, lambda m: (gr.Radio(info=MODE_INFO[m]), *_threshold_controls(m)), mode_controls, mode)
    ui_only(
        image.change,
        lambda: (None, None, None, None, None, [], ""),
        outputs=[result, label_png, segments_file, annotated, colours, table, summary],
    )
    rendering: dict[str, Any] = {
        "inputs": [image, result, label_png, opacity],
        "outputs": [annotated, colours, table, summary],
        "api_visibility": "private",
        "concurrency_id": "render",
        "concurrency_limit": 4,
    }
    inputs = [image, model, mode, score, mask, overlap, fuse]
    run_model(run, segment_fn, inputs, [result, label_png, segments_file], "segment", summary).success(
        render_views, **rendering
    )
    opacity.release(render_views, **rendering)


def create_demo(segment_fn: SegmentFn = segment_image) -> gr.Blocks:
    return standalone("Segment", build, segment_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
