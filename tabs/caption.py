"""Caption tab: describe a photo (ViT-GPT2) or read one line of text (TrOCR), with decoding controls,
an n-best list for beam search, several images in one batch, and the caption streaming word by word."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from core import caption as core_caption
from core import checks
from core.caption import Decoding
from core.errors import InputError
from core.images import ImageInputError, load_image
from core.registry import get_spec
from tabs.components import FileUpload, example_paths, image_input, model_picker, on_gpu, standalone, user_errors

DEFAULTS = Decoding()
DEFAULT_MODEL = "vit-gpt2"
MODE_CHOICES = [("Greedy", "greedy"), ("Beam search", "beam"), ("Sampling", "sampling")]
PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
TEXT_LINES = ("text-line.png", "text-lines.png")
ONE_LINE_NOTE = (
    "**TrOCR reads ONE line of text**, not a page or a photo. Give it a single line: crop the image "
    "to one line with the band below (or before uploading)."
)
BEAM_NOTE = "Beam search shows its captions when every beam has finished: it cannot stream word by word."
CaptionFn = Callable[..., Iterator[dict[str, Any]]]
BatchFn = Callable[..., dict[str, Any]]


@user_errors("caption the image")
@on_gpu(duration=60)
def caption_image(
    image: str | None,
    model: str,
    mode: str,
    max_new_tokens: float,
    num_beams: float,
    n_best: float,
    temperature: float,
    top_p: float,
    seed: float,
    length_penalty: float = 1.0,
) -> Iterator[dict[str, Any]]:
    """Caption an image (ViT-GPT2) or read one line of text in it (TrOCR).

    Args:
        image: the image (any common format).
        model: registry key: "vit-gpt2", "trocr-base-handwritten" or "trocr-base-printed".
        mode: "greedy", "beam" or "sampling".
        max_new_tokens: length limit of the caption in tokens (1-64).
        num_beams: beams for beam search (1-8).
        n_best: captions beam search returns, best first (1 to num_beams).
        temperature: sampling temperature (above 0, at most 2).
        top_p: nucleus sampling threshold (above 0, at most 1).
        seed: random seed for sampling (0 to 2**31-1); the same seed gives the same caption.
        length_penalty: beam search: a caption's score is the sum of its tokens' log-probabilities divided
            by its length ** length_penalty (-3 to 3; above 0 favours longer captions).

    Returns:
        {"caption": str, "candidates": [{"text", "score"}], "model", "model_name", "hub_id", "mode",
        "timings_ms": {"preprocess", "generate", "load"}, "device", "generation": {the settings generate
        ran with}, "done"}. Greedy and sampling stream: partial results have "done": False; the last one
        is the final caption.
    """
    decoding = core_caption.validate_decoding(
        mode, max_new_tokens, num_beams, n_best, temperature, top_p, seed, length_penalty
    )
    get_spec(model, core_caption.TASK)  # an unknown model is refused before the image is read
    rgb = load_image(image)
    if decoding.mode == "beam":
        yield core_caption.caption(rgb, model, decoding).to_dict()
        return
    results = core_caption.stream_caption(rgb, model, decoding)
    try:
        for result in results:
            yield result.to_dict()
    finally:
        results.close()


def _load_images(files: list[str] | None) -> list[Image.Image]:
    if not files:
        raise InputError("Add at least one image.")
    if len(files) > core_caption.MAX_BATCH_IMAGES:
        raise InputError(f"Caption at most {core_caption.MAX_BATCH_IMAGES} images at once, not {len(files)}.")
    images = []
    for number, file in enumerate(files, start=1):
        try:
            images.append(load_image(file))
        except ImageInputError as error:
            raise ImageInputError(f"Image {number} ({Path(file).name[:60]}): {error}") from None
    return images


@user_errors("caption the images")
@on_gpu(duration=120)
def caption_images(
    images: list[str] | None,
    model: str,
    mode: str,
    max_new_tokens: float,
    num_beams: float,
    temperature: float,
    top_p: float,
    seed: float,
    length_penalty: float = 1.0,
) -> dict[str, Any]:
    """Caption several images in one batched generate call (one caption per image, in order).

    Args:
        images: up to 16 images (any common format).
        model: registry key, as for /caption.
        mode: "greedy", "beam" (the best beam of each image) or "sampling".
        max_new_tokens: length limit of each caption in tokens (1-64).
        num_beams: beams for beam search (1-8).
        temperature: sampling temperature (above 0, at most 2).
        top_p: nucleus sampling threshold (above 0, at most 1).
        seed: random seed for sampling; the same seed gives the same captions.
        length_penalty: beam search length penalty (-3 to 3), as for /caption.

    Returns:
        {"captions": [{"text", "score"}], "files": [name], "model", "model_name", "hub_id", "mode",
        "timings_ms": {"preprocess", "generate", "load"}, "device", "generation"}
    """
    decoding = core_caption.validate_decoding(
        mode, max_new_tokens, num_beams, 1, temperature, top_p, seed, length_penalty
    )
    get_spec(model, core_caption.TASK)
    rgbs = _load_images(images)
    result = core_caption.caption_batch(rgbs, model, decoding).to_dict()
    return {**result, "files": [Path(file).name for file in images or []]}


@user_errors("crop the image")
def crop_line(image: str | None, top: float, bottom: float) -> Image.Image:
    return core_caption.crop_band(load_image(image), top, bottom)


def _timing_line(data: dict[str, Any]) -> str:
    timings = data["timings_ms"]
    line = f"**{timings['generate']:.0f} ms** generating on {data['device']}"
    line += f" · preprocessing {timings['preprocess']:.0f} ms"
    if timings["load"] is not None:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    line += "" if data.get("done", True) else " · writing…"
    return line + "  \n" + settings_line(data.get("generation") or {})


def settings_line(generation: dict[str, Any]) -> str:
    """The decoding settings `generate` ran with, in words (also those a checkpoint stores)."""
    if not generation:
        return ""
    if generation["do_sample"]:
        parts = [f"sampling (temperature {generation['temperature']:g}, top-p {generation['top_p']:g})"]
    elif generation["num_beams"] > 1:
        parts = [f"beam search ({generation['num_beams']} beams, length penalty {generation['length_penalty']:g})"]
    else:
        parts = ["greedy"]
    parts.append(f"at most {generation['max_new_tokens']} new tokens")
    ngram = generation["no_repeat_ngram_size"]
    parts.append(f"no repeated {ngram}-grams" if ngram else "no n-gram blocking")
    if generation["repetition_penalty"] != 1.0:
        parts.append(f"repetition penalty {generation['repetition_penalty']:g}")
    return "<small>Ran with: " + ", ".join(parts) + ".</small>"


def show_result(data: dict[str, Any] | None) -> tuple[str, gr.Dataframe, str]:
    if not data:
        return "", gr.Dataframe(value=None, visible=False), ""
    if data["mode"] != "beam":
        return data["caption"], gr.Dataframe(value=None, visible=False), _timing_line(data)
    rows = [[rank, c["text"], round(c["score"], 4)] for rank, c in enumerate(data["candidates"], start=1)]
    return data["caption"], gr.Dataframe(value=rows, visible=True), _timing_line(data)


@user_errors("show the captions")
def show_batch(files: list[str] | None, data: dict[str, Any] | None) -> tuple[list[tuple[Image.Image, str]], str]:
    if not data or not files:
        return [], ""
    pairs = [(load_image(file), c["text"] or "(empty)") for file, c in zip(files, data["captions"], strict=True)]
    return pairs, f"{len(pairs)} images in one batch · " + _timing_line(data)


def _model_hints(model: str) -> gr.Group:
    return gr.Group(visible=core_caption.reads_one_line(model))


def _mode_controls(mode: str) -> tuple[gr.Group, gr.Group, gr.Markdown]:
    return gr.Group(visible=mode == "beam"), gr.Group(visible=mode == "sampling"), gr.Markdown(visible=mode == "beam")


def _limit_n_best(num_beams: float, n_best: float) -> gr.Slider:
    return gr.Slider(maximum=int(num_beams), value=min(int(n_best), int(num_beams)))


def build(caption_fn: CaptionFn = caption_image, batch_fn: BatchFn = caption_images) -> None:
    """Lay out the tab inside the current Blocks context."""
    specs = core_caption.caption_models()
    with gr.Row():
        with gr.Column(scale=2):
            image = image_input(label="Image", height=340, format="png")
            gr.Examples(examples=example_paths(*PHOTOS), inputs=image, label="Example photos")
            gr.Examples(examples=example_paths(*TEXT_LINES), inputs=image, label="Lines of text (for TrOCR)")
        with gr.Column(scale=3):
            model = model_picker(
                specs,
                DEFAULT_MODEL,
                "ViT-GPT2 describes a photo; TrOCR reads one line of text. Each loads on first use.",
                gr.Radio,
            )
            with gr.Group(visible=core_caption.reads_one_line(DEFAULT_MODEL)) as line_tools:
                gr.Markdown(ONE_LINE_NOTE, elem_id="caption-one-line", padding=True)
                with gr.Row():
                    band_top = gr.Slider(0, 100, value=0, step=1, label="Top of the line (% of height)")
                    band_bottom = gr.Slider(0, 100, value=100, step=1, label="Bottom of the line (% of height)")
                crop = gr.Button("Crop to this band", size="sm")
            mode = gr.Radio(choices=MODE_CHOICES, value=DEFAULTS.mode, label="Decoding")
            max_new_tokens = gr.Slider(
                1, core_caption.MAX_NEW_TOKENS, value=DEFAULTS.max_new_tokens, step=1, label="Max new tokens"
            )
            with gr.Group(visible=False) as beam_controls, gr.Row():
                num_beams = gr.Slider(
                    1, core_caption.MAX_BEAMS, value=DEFAULTS.num_beams, step=1, label="Number of beams"
                )
                n_best = gr.Slider(
                    1, DEFAULTS.num_beams, value=DEFAULTS.n_best, step=1, label="Captions to show (n-best)"
                )
                length_penalty = gr.Slider(
                    -core_caption.MAX_LENGTH_PENALTY,
                    core_caption.MAX_LENGTH_PENALTY,
                    value=DEFAULTS.length_penalty,
                    step=0.1,
                    label="Length penalty",
                    info="Score = sum of log-probabilities / length ** penalty; above 0 favours longer captions.",
                )
            with gr.Group(visible=False) as sampling_controls, gr.Row():
                temperature = gr.Slider(0.05, 2, value=DEFAULTS.temperature, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1, value=DEFAULTS.top_p, step=0.05, label="Top-p")
                seed = gr.Number(
                    value=DEFAULTS.seed,
                    precision=0,
                    minimum=0,
                    maximum=checks.MAX_SEED,
                    label="Seed",
                    info="Same seed, same caption.",
                )
            beam_note = gr.Markdown(BEAM_NOTE, visible=False)
            run = gr.Button("Caption", variant="primary")
    caption_text = gr.Textbox(label="Caption", elem_id="caption-text", lines=2, interactive=False, buttons=["copy"])
    candidates = gr.Dataframe(
        headers=["rank", "caption", "score"],
        datatype=["number", "str", "number"],
        label="Beam search: n-best captions (score: sum of token log-probabilities / length ** length penalty)",
        visible=False,
        interactive=False,
        elem_id="caption-candidates",
    )
    timing = gr.Markdown(elem_id="caption-timing")
    with gr.Accordion("Result as JSON (what the API returns)", open=False):
        result = gr.JSON(label="caption", show_label=False)

    with gr.Accordion("Several images", open=False, elem_id="caption-batch"):
        gr.Markdown(
            f"Caption up to {core_caption.MAX_BATCH_IMAGES} images in one batched `generate` call, with the "
            "model and decoding chosen above (beam search keeps the best beam of each image)."
        )
        with gr.Row():
            with gr.Column(scale=2):
                files = FileUpload(
                    file_count="multiple", file_types=["image"], type="filepath", label="Images", height=200
                )
                gr.Examples(examples=[[example_paths(*PHOTOS)]], inputs=files, label="Example batch")
                run_batch = gr.Button("Caption all", variant="primary")
            with gr.Column(scale=3):
                gallery = gr.Gallery(label="Captions", columns=4, height=320, elem_id="caption-gallery")
                batch_timing = gr.Markdown()
        with gr.Accordion("Batch result as JSON", open=False):
            batch_result = gr.JSON(label="caption_batch", show_label=False)

    model.change(_model_hints, inputs=model, outputs=line_tools, api_visibility="private", queue=False)
    mode.change(
        _mode_controls,
        inputs=mode,
        outputs=[beam_controls, sampling_controls, beam_note],
        api_visibility="private",
        queue=False,
    )
    num_beams.change(_limit_n_best, inputs=[num_beams, n_best], outputs=n_best, api_visibility="private", queue=False)
    image.change(lambda: None, outputs=result, api_visibility="private", queue=False)
    crop.click(crop_line, inputs=[image, band_top, band_bottom], outputs=image, api_visibility="private")
    result.change(
        show_result, inputs=result, outputs=[caption_text, candidates, timing], api_visibility="private", queue=False
    )
    run.click(
        caption_fn,
        inputs=[image, model, mode, max_new_tokens, num_beams, n_best, temperature, top_p, seed, length_penalty],
        outputs=result,
        api_name="caption",
        concurrency_id="models",
        show_progress_on=caption_text,
    )
    run_batch.click(
        batch_fn,
        inputs=[files, model, mode, max_new_tokens, num_beams, temperature, top_p, seed, length_penalty],
        outputs=batch_result,
        api_name="caption_batch",
        concurrency_id="models",
        show_progress_on=gallery,
    ).success(show_batch, inputs=[files, batch_result], outputs=[gallery, batch_timing], api_visibility="private")


def create_demo(caption_fn: CaptionFn = caption_image, batch_fn: BatchFn = caption_images) -> gr.Blocks:
    return standalone("Caption", build, caption_fn, batch_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
