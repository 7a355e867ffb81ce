"""Flow tab: optical flow between two frames (Perceiver IO, DIS, Farneback side by side) or over a short clip."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from core import flow as core_flow
from core.images import load_image
from core.settings import get_settings
from tabs.components import (
    as_files,
    clip_with_example,
    example_paths,
    image_input,
    on_gpu,
    output_dir,
    standalone,
    user_errors,
)

DEFAULT_METHODS = ["dis", "farneback"]
DEFAULT_STRIDE = 24
FlowFn = Callable[..., tuple[dict[str, Any], list[tuple[np.ndarray, str]], list[str]]]
VideoFlowFn = Callable[..., tuple[str, dict[str, Any]]]


@user_errors("compute the flow")
@on_gpu(duration=120)
def compute_flow(
    frame1: str | None,
    frame2: str | None,
    methods: list[str],
    dis_preset: str,
    arrow_stride: float,
    progress: gr.Progress = gr.Progress(),
) -> tuple[dict[str, Any], list[tuple[np.ndarray, str]], list[str]]:
    """Optical flow from frame 1 to frame 2 with one or several methods.

    Args:
        frame1: the first frame (any common image format).
        frame2: the second frame, the same size as the first.
        methods: any of "perceiver-flow" (Perceiver IO), "dis", "farneback".
        dis_preset: DIS speed/quality preset: "ultrafast", "fast" or "medium".
        arrow_stride: spacing of the arrows in pixels (4-64).

    Returns:
        A dict {"size", "methods": {method: {"name", "mean_magnitude", "max_magnitude",
        "mean_photometric_error", "runtime_ms", "device", "tiles", ...}}, "color_scale_px",
        "photometric_error_without_flow", "images", "files", "summary"}; the images (per method:
        flow colours with legend, arrows, frame 2 warped onto frame 1, error map) in the order of
        "images"; the flow of each method as Middlebury .flo and numpy .npy files.
    """
    first, second = load_image(frame1), load_image(frame2)
    folder = output_dir("flow")
    result = core_flow.compare_flow(
        first,
        second,
        methods,
        dis_preset=dis_preset,
        arrow_stride=arrow_stride,
        out_dir=folder,
        progress=lambda f, m: progress(f, desc=m),
    )
    return result.to_dict(), as_files(result.gallery, folder, "flow"), [str(path) for path in result.files]


@user_errors("compute the flow of the video")
@on_gpu(duration=300)
def compute_video_flow(
    video: str | None, method: str, dis_preset: str, frame_step: float, progress: gr.Progress = gr.Progress()
) -> tuple[str, dict[str, Any]]:
    """Optical flow between consecutive frames of a short clip.

    Args:
        video: the clip (MP4, MOV, WebM, MKV or AVI), within the app's frame and duration limits.
        method: "perceiver-flow" (Perceiver IO), "dis" or "farneback".
        dis_preset: DIS preset: "ultrafast", "fast" or "medium".
        frame_step: use every n-th frame (1-10).

    Returns:
        An mp4 with each frame beside its colour-coded flow, and a dict of numbers
        {"frames", "pairs", "fps", "size", "color_scale_px", "mean_magnitude_per_pair", "runtime_ms", ...}.
    """
    result = core_flow.video_flow(
        video,
        method,
        dis_preset=dis_preset,
        frame_step=frame_step,
        out_dir=output_dir("flow-video"),
        progress=lambda f, m: progress(f, desc=m),
    )
    return str(result.video), result.info


def stats_table(data: dict[str, Any] | None) -> str:
    """The numbers of a compare_flow result as a Markdown table."""
    if not data:
        return ""
    rows = [
        "| method | mean flow | max flow | warp error | time | where |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for stats in data["methods"].values():
        where = stats["device"] + (f", {stats['tiles']} tiles" if stats["tiles"] else "")
        if stats["load_ms"] is not None:
            where += f", loaded in {stats['load_ms'] / 1000:.1f} s"
        rows.append(
            f"| **{stats['name']}** | {stats['mean_magnitude']:.2f} px | {stats['max_magnitude']:.2f} px "
            f"| {_number(stats['mean_photometric_error'])} | {stats['runtime_ms']:.0f} ms | {where} |"
        )
    size = data["size"]
    return (
        "\n".join(rows)
        + f"\n\n{size['width']}×{size['height']} px. Warp error: mean absolute difference (0-255) between frame 1 "
        f"and frame 2 warped back by the flow; without flow it is {data['photometric_error_without_flow']:.2f}. "
        f"Colours: the wheel's rim is {data['color_scale_px']:.2f} px for every method."
    )


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def video_summary(info: dict[str, Any] | None) -> str:
    if not info:
        return ""
    size = info["size"]
    line = (
        f"**{info['name']}** on {info['pairs']} frame pairs ({info['frames']} frames, step {info['frame_step']}, "
        f"{size['width']}×{size['height']} px) in {info['runtime_ms'] / 1000:.1f} s on {info['device']}. "
        f"Mean flow {np.mean(info['mean_magnitude_per_pair']):.2f} px per pair; "
        f"wheel rim {info['color_scale_px']:.2f} px."
    )
    original = info["original_size"]
    if (original["width"], original["height"]) != (size["width"], size["height"]):
        line += f" Scaled down from {original['width']}×{original['height']}."
    return line


def build(flow_fn: FlowFn = compute_flow, video_fn: VideoFlowFn = compute_video_flow) -> None:
    """Lay out the tab inside the current Blocks context."""
    methods = core_flow.flow_methods()
    presets = list(core_flow.DIS_PRESETS)
    settings = get_settings()
    with gr.Tabs():
        with gr.Tab("Two frames", id="flow-frames"):
            with gr.Row():
                frame1 = image_input(label="Frame 1", height=300)
                frame2 = image_input(label="Frame 2", height=300)
            gr.Examples(
                examples=[example_paths("flow_frame1.png", "flow_frame2.png")],
                inputs=[frame1, frame2],
                label="Example pair: a photo rotated by 3° and shifted by (3.5, -2) px",
            )
            with gr.Row():
                method_choice = gr.CheckboxGroup(
                    choices=methods,
                    value=DEFAULT_METHODS,
                    label="Methods",
                    info="Compare side by side. Perceiver IO loads on first use; DIS and Farneback need no weights.",
                )
                preset = gr.Radio(presets, value="medium", label="DIS preset", info="faster or more accurate")
                stride = gr.Slider(
                    core_flow.MIN_STRIDE, core_flow.MAX_STRIDE, value=DEFAULT_STRIDE, step=1, label="Arrow spacing (px)"
                )
            run = gr.Button("Compute flow", variant="primary")
            table = gr.Markdown(elem_id="flow-stats")
            gallery = gr.Gallery(
                label="Per method: flow colours (direction = hue, length = saturation), arrows over frame 1, "
                "frame 2 warped onto frame 1, photometric error",
                columns=4,
                format="png",
                object_fit="contain",
                height="fit-content",
                elem_id="flow-gallery",
            )
            files = gr.File(label="Flow fields (.flo Middlebury, .npy)", file_count="multiple", elem_id="flow-files")
            with gr.Accordion("Result as JSON (what the API returns)", open=False):
                result = gr.JSON(label="flow", show_label=False)
        with gr.Tab("Video", id="flow-video"):
            with gr.Row():
                with gr.Column():
                    clip = clip_with_example("flow_pan.mp4", "Example: a pan across a photo", "flow-video-examples")
                with gr.Column():
                    video_method = gr.Radio(methods, value="dis", label="Method")
                    video_preset = gr.Radio(presets, value="fast", label="DIS preset")
                    frame_step = gr.Slider(1, core_flow.MAX_FRAME_STEP, value=1, step=1, label="Frame step")
                    gr.Markdown(
                        f"Clips up to {settings.flow_video_max_seconds:g} s and {settings.flow_video_max_frames} "
                        f"frames; larger frames are scaled to {settings.flow_video_max_pixels / 1e6:.2g} megapixels."
                    )
                    run_video = gr.Button("Compute video flow", variant="primary")
            video_info_line = gr.Markdown(elem_id="flow-video-summary")
            flow_video = gr.Video(label="Frames and their flow", interactive=False, autoplay=True, loop=True)
            with gr.Accordion("Numbers as JSON (what the API returns)", open=False):
                video_info = gr.JSON(label="flow_video", show_label=False)

    for source in (frame1, frame2):
        source.change(
            lambda: (None, "", None, None),
            outputs=[result, table, gallery, files],
            api_visibility="private",
            queue=False,
        )
    run.click(
        flow_fn,
        inputs=[frame1, frame2, method_choice, preset, stride],
        outputs=[result, gallery, files],
        api_name="flow",
        concurrency_id="models",
        show_progress_on=table,
    ).success(stats_table, inputs=result, outputs=table, api_visibility="private")
    clip.change(
        lambda: (None, None, ""),
        outputs=[flow_video, video_info, video_info_line],
        api_visibility="private",
        queue=False,
    )
    run_video.click(
        video_fn,
        inputs=[clip, video_method, video_preset, frame_step],
        outputs=[flow_video, video_info],
        api_name="flow_video",
        concurrency_id="models",
        show_progress_on=video_info_line,
    ).success(video_summary, inputs=video_info, outputs=video_info_line, api_visibility="private")


def create_demo(flow_fn: FlowFn = compute_flow, video_fn: VideoFlowFn = compute_video_flow) -> gr.Blocks:
    return standalone("Flow", build, flow_fn, video_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
