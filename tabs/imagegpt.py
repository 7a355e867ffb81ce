"""ImageGPT tab: sample 32x32 images or complete the top of a photo, rows appearing as they are drawn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
from PIL import Image

from core import imagegpt as core_imagegpt
from core.images import load_image
from tabs.components import (
    as_files,
    example_paths,
    image_input,
    model_picker,
    on_gpu,
    output_dir,
    standalone,
    user_errors,
)

DEFAULT_MODEL = "imagegpt-small"
PIXELATED = "pixelated"
Gallery = list[tuple[Image.Image, str]]


def _options(num_images: float, temperature: float, top_k: float, top_p: float, seed: float, weights: str) -> Any:
    return core_imagegpt.SamplingOptions(
        num_images=num_images, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, weights=weights
    )


def _gallery(samples: core_imagegpt.Samples, prefix: str) -> Gallery:
    """Rows so far as images; the finished set as PNG files (see `as_files`)."""
    gallery = [(image, f"{prefix} {index + 1}") for index, image in enumerate(samples.images)]
    if samples.tokens.shape[1] < core_imagegpt.SIDE * core_imagegpt.SIDE:
        return gallery
    return as_files(gallery, output_dir("imagegpt"), prefix)


@user_errors("sample images")
@on_gpu(duration=180)
def sample_images(
    model: str,
    num_images: float = 4,
    temperature: float = 1.0,
    top_k: float = 0,
    top_p: float = 1.0,
    seed: float = 0,
    weights: str = "float32",
) -> Iterator[tuple[Gallery, dict[str, Any]]]:
    """Sample 32x32 images from ImageGPT, row by row (the last update is the finished set).

    Args:
        model: "imagegpt-small", "imagegpt-medium" or "imagegpt-large".
        num_images: how many images (1-16), sampled as one batch.
        temperature: sampling temperature (0.05-5); lower is more conservative.
        top_k: sample only among the k most likely colours (0 = all, 1 = greedy).
        top_p: sample only among the most likely colours whose probabilities add up to top_p (0.01-1).
        seed: the same seed and settings give the same images.
        weights: "float32" (exact) or "int8" (on a CPU about 2-3x faster for one image; not the exact samples).

    Returns:
        The images (32x32 PNG) and {"model", "weights", "num_images", "rows_done", "kept_rows", "tokens"}.
    """
    options = _options(num_images, temperature, top_k, top_p, seed, weights)
    for samples in core_imagegpt.sample_stream(model, options):
        yield _gallery(samples, "sample"), samples.to_dict()


@user_errors("complete the image")
@on_gpu(duration=180)
def complete_image(
    image: str | None,
    model: str,
    kept_rows: float = 16,
    num_images: float = 4,
    temperature: float = 1.0,
    top_k: float = 0,
    top_p: float = 1.0,
    seed: float = 0,
    weights: str = "float32",
) -> Iterator[tuple[Gallery, Gallery, dict[str, Any]]]:
    """Complete the bottom of an image: keep its top rows (of 32) and let ImageGPT draw the rest.

    Args:
        image: any photo; it is reduced to ImageGPT's 32x32 palette image.
        model: "imagegpt-small", "imagegpt-medium" or "imagegpt-large".
        kept_rows: how many of the 32 rows to keep (1-31).
        num_images: how many completions (1-16).
        temperature: sampling temperature (0.05-5); lower is more conservative.
        top_k: sample only among the k most likely colours (0 = all, 1 = greedy).
        top_p: sample only among the most likely colours whose probabilities add up to top_p (0.01-1).
        seed: the same seed and settings give the same completions.
        weights: "float32" (exact) or "int8" (on a CPU about 2-3x faster for one image; not the exact samples).

    Returns:
        The steps (original, 32x32 palette version, kept part), the completions, and
        {"model", "weights", "num_images", "rows_done", "kept_rows", "tokens"}.
    """
    rgb = load_image(image)
    options = _options(num_images, temperature, top_k, top_p, seed, weights)
    for samples in core_imagegpt.complete_stream(rgb, model, kept_rows, options):
        steps = [
            (rgb, "original"),
            (samples.quantised, "32×32 palette"),
            (core_imagegpt.kept_part(samples.quantised, samples.kept_rows), f"kept: top {samples.kept_rows} rows"),
        ]
        yield steps, _gallery(samples, "completion"), samples.to_dict()


def _sampling_controls() -> tuple[Any, ...]:
    num_images = gr.Slider(1, core_imagegpt.MAX_IMAGES, value=4, step=1, label="Images")
    temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
    top_k = gr.Slider(0, 512, value=0, step=1, label="Top-k", info="0 = all colours, 1 = greedy")
    top_p = gr.Slider(0.01, 1.0, value=1.0, step=0.01, label="Top-p")
    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", info="Same seed, same images.")
    weights = gr.Radio(
        list(core_imagegpt.WEIGHTS),
        value="float32",
        label="Weights",
        info="float32 samples exactly; int8 is about 2-3x faster for one image on a CPU, with slightly "
        "different probabilities (other samples for the same seed). GPUs use float16.",
    )
    return num_images, temperature, top_k, top_p, seed, weights


def _pixel_gallery(label: str, elem_id: str) -> gr.Gallery:
    return gr.Gallery(
        label=label,
        columns=4,
        height="auto",
        object_fit="contain",
        format="png",
        elem_id=elem_id,
        elem_classes=PIXELATED,
    )


def build() -> None:
    """Lay out the tab inside the current Blocks context."""
    specs = core_imagegpt.imagegpt_models()
    model = model_picker(
        specs,
        DEFAULT_MODEL,
        "ImageGPT draws 32×32 images in a 512-colour palette, one pixel at a time, row by row.",
        gr.Radio,
    )
    with gr.Tabs():
        with gr.Tab("Sample"), gr.Row():
            with gr.Column(scale=1):
                controls = _sampling_controls()
                with gr.Row():
                    sample_button = gr.Button("Sample", variant="primary")
                    stop_sample = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                samples = _pixel_gallery(
                    "Samples (32×32, shown enlarged; download for the originals)", "imagegpt-samples"
                )
                with gr.Accordion("Result as JSON (what the API returns)", open=False):
                    sample_json = gr.JSON(show_label=False)
        with gr.Tab("Complete"), gr.Row():
            with gr.Column(scale=1):
                image = image_input(label="Image to complete", height=260)
                gr.Examples(
                    examples=example_paths("chelsea.jpg", "astronaut.jpg", "coffee.jpg", "grace_hopper.jpg"),
                    inputs=image,
                    label="Example photos",
                )
                kept_rows = gr.Slider(1, 31, value=16, step=1, label="Rows to keep (of 32)")
                complete_controls = _sampling_controls()
                with gr.Row():
                    complete_button = gr.Button("Complete", variant="primary")
                    stop_complete = gr.Button("Stop", variant="stop")
            with gr.Column(scale=2):
                steps = _pixel_gallery("Original, palette version, kept part", "imagegpt-steps")
                completions = _pixel_gallery("Completions", "imagegpt-completions")
                with gr.Accordion("Result as JSON (what the API returns)", open=False):
                    complete_json = gr.JSON(show_label=False)

    sampling = sample_button.click(
        sample_images,
        inputs=[model, *controls],
        outputs=[samples, sample_json],
        api_name="imagegpt_sample",
        concurrency_id="models",
    )
    stop_sample.click(None, cancels=[sampling], api_visibility="private", queue=False)
    completing = complete_button.click(
        complete_image,
        inputs=[image, model, kept_rows, *complete_controls],
        outputs=[steps, completions, complete_json],
        api_name="imagegpt_complete",
        concurrency_id="models",
    )
    stop_complete.click(None, cancels=[completing], api_visibility="private", queue=False)


def create_demo() -> gr.Blocks:
    return standalone("ImageGPT", build)


if __name__ == "__main__":
    create_demo().queue().launch()
