"""Zero-shot sub-tab of Classify: your own labels for a photo, photos searched by text, and captions
ranked for a photo, with a vision-text dual encoder (clip-italian) whose text side reads Italian."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from core import zero_shot as core_zero_shot
from core.errors import InputError
from core.images import load_image
from tabs.components import (
    FileUpload,
    api_json,
    beside_photo,
    example_paths,
    on_gpu,
    run_model,
    standalone,
    ui_only,
    user_errors,
)

PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
DEFAULT_LABELS = "un gatto\nun cane\nuna tazza di caffè\nun astronauta\nuna donna in uniforme"
DEFAULT_QUERY = "un gatto"
DEFAULT_CAPTIONS = (
    "un gatto sdraiato su una coperta\n"
    "una tazza di caffè su un piattino\n"
    "un astronauta con la tuta arancione\n"
    "il ritratto di una donna in uniforme"
)
DEFAULT_TOP_K = 4
LABEL_EXAMPLES = [
    ["un gatto, un cane, un uccello, un pesce", core_zero_shot.DEFAULT_TEMPLATE],
    ["caffè, tè, vino, birra, acqua", "una tazza di {}"],
    ["di giorno, di notte, al tramonto", "una foto scattata {}"],
]
"""(labels, template): cat, dog, bird, fish / coffee, tea, wine, beer, water ("a cup of {}") / by day, by
night, at sunset ("a photo taken {}")."""
ITALIAN_NOTE = (
    "**The text side reads Italian.** [clip-italian](https://huggingface.co/clip-italian/clip-italian) pairs "
    "OpenAI's CLIP ViT-B/32 image encoder with an Italian BERT, trained together on 1.4 million Italian "
    "image-caption pairs: write labels and queries in Italian (English words are read as Italian word pieces). "
    "Probabilities are a softmax of the cosine similarities times the model's own logit scale; the cosine "
    "similarities are shown too."
)
LABELS_INFO = (
    f"One per line, or separated by commas (up to {core_zero_shot.MAX_LABELS}). In Italian, e.g. 'un gatto' "
    "(a cat), 'un cane' (a dog), 'una tazza di caffè' (a cup of coffee), 'un astronauta' (an astronaut), "
    "'una donna in uniforme' (a woman in uniform)."
)
TEMPLATE_INFO = (
    "Each label replaces {}. 'una foto di {}' means 'a photo of {}'; leave it empty to use the labels as they are."
)
WEB_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
"""Formats a browser shows as they are; other uploads are shown decoded."""
ZeroShotFn = Callable[..., dict[str, Any]]


@user_errors("score the labels")
@on_gpu(duration=60)
def zero_shot_classify(
    image: str | None,
    labels: str = DEFAULT_LABELS,
    template: str = core_zero_shot.DEFAULT_TEMPLATE,
    progress: gr.Progress = gr.Progress(),
) -> dict[str, Any]:
    """Score your own labels for a photo with clip-italian (zero-shot classification; the text side reads Italian).

    Args:
        image: the photo (any common format).
        labels: the labels, one per line or separated by commas (up to 64), in Italian, e.g. "un gatto, un cane".
        template: a prompt with {} where each label goes, e.g. "una foto di {}" (a photo of {}); empty: the labels
            as they are.

    Returns:
        {"labels": [{"label", "prompt", "probability", "cosine"}] most probable first, "template", "logit_scale"
        (probabilities = softmax(cosine * logit_scale)), "notes": [str], "image_embedding": "computed" or "cached",
        "timings_ms": {"preprocess", "image_encoder", "text_encoder", "load"}, "model", "model_name", "hub_id",
        "device", "text_max_tokens"}
    """
    photo = core_zero_shot.photo_from_file(image)
    result = core_zero_shot.zero_shot(photo, labels, template, progress=lambda f, m: progress(f, desc=m))
    return result.to_dict()


def _photos(files: list[str] | None) -> list[core_zero_shot.Photo]:
    if not files:
        raise InputError("Add at least one photo to search (or pick the example photos).")
    if len(files) > core_zero_shot.MAX_IMAGES:
        raise InputError(f"Search at most {core_zero_shot.MAX_IMAGES} photos at once, not {len(files)}.")
    return [core_zero_shot.photo_from_file(file) for file in files]


@user_errors("search the photos")
@on_gpu(duration=120)
def search_images(
    images: list[str] | None,
    query: str = DEFAULT_QUERY,
    top_k: float = DEFAULT_TOP_K,
    progress: gr.Progress = gr.Progress(),
) -> dict[str, Any]:
    """Rank a set of photos by how well they match a text query, with clip-italian (the text side reads Italian).

    Each photo's embedding is computed once and cached by its content, so a new query over the same photos
    only runs the text encoder.

    Args:
        images: up to 32 photos (any common format).
        query: what to look for, in Italian, e.g. "un gatto sul divano" (a cat on the sofa).
        top_k: how many photos to return, best first (1-32).

    Returns:
        {"query", "ranking": [{"rank", "index" (0-based, in upload order), "name", "cosine", "probability"}],
        "images": count, "embeddings": {"computed", "cached"}, "logit_scale", "notes", "timings_ms": {"preprocess",
        "image_encoder", "text_encoder", "load"}, "model", "model_name", "hub_id", "device", "text_max_tokens"}
    """
    query = core_zero_shot.check_query(query)
    photos = _photos(images)
    result = core_zero_shot.search_images(photos, query, top_k, progress=lambda f, m: progress(f, desc=m))
    return result.to_dict()


@user_errors("rank the captions")
@on_gpu(duration=60)
def rank_captions(
    image: str | None, captions: str = DEFAULT_CAPTIONS, progress: gr.Progress = gr.Progress()
) -> dict[str, Any]:
    """Rank captions for one photo with clip-italian: which caption describes it best (the text side reads Italian).

    Args:
        image: the photo (any common format).
        captions: the captions, one per line (up to 64), in Italian, used as they are (no template).

    Returns:
        As /zero_shot: {"labels": [{"label", "prompt", "probability", "cosine"}] best first, "logit_scale", "notes",
        "image_embedding", "timings_ms", "model", ...}
    """
    photo = core_zero_shot.photo_from_file(image)
    result = core_zero_shot.rank_captions(photo, captions, progress=lambda f, m: progress(f, desc=m))
    return result.to_dict()


# --- showing results ------------------------------------------------------------------------------------


def _short(text: str, length: int = 80) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def as_bars(data: dict[str, Any]) -> dict[str, float]:
    """{label: probability} for gr.Label (long labels shortened, kept apart if they then collide)."""
    bars: dict[str, float] = {}
    for number, score in enumerate(data["labels"], start=1):
        name = _short(score["label"])
        bars[name if name not in bars else f"{name} ({number})"] = score["probability"]
    return bars


def cosine_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [_short(score["label"]), _short(score["prompt"]), round(score["probability"], 4), round(score["cosine"], 4)]
        for score in data["labels"]
    ]


def _load_line(timings: dict[str, Any]) -> str:
    return f" · loaded in {timings['load'] / 1000:.1f} s" if timings["load"] is not None else ""


def summary(data: dict[str, Any], what: str = "labels") -> str:
    """Timings in words (whether the photo's embedding came from the cache), the logit scale, the notes."""
    timings = data["timings_ms"]
    count = len(data["labels"])
    text = f"text encoder **{timings['text_encoder']:.0f} ms** for {count} {what}"
    if data["image_embedding"] == "cached":
        line = f"Photo embedding from the cache: only the text encoder ran ({text})"
    else:
        line = f"Image encoder **{timings['image_encoder']:.0f} ms** (its embedding is now cached) · {text}"
    line += f" · preprocessing {timings['preprocess']:.0f} ms on {data['device']}{_load_line(timings)}."
    scale = f"Probability = softmax(cosine × {data['logit_scale']:.3g}, the model's logit scale)."
    notes = "".join(f"\n- {note}" for note in data["notes"])
    return f"{line}  \n{scale}{notes}"


def show_labels(data: dict[str, Any] | None) -> tuple[dict[str, float] | None, list[list[Any]] | None, str]:
    if not data:
        return None, None, ""
    return as_bars(data), cosine_rows(data), summary(data)


def show_captions(data: dict[str, Any] | None) -> tuple[dict[str, float] | None, list[list[Any]] | None, str]:
    if not data:
        return None, None, ""
    return as_bars(data), cosine_rows(data), summary(data, "captions")


def search_summary(data: dict[str, Any]) -> str:
    timings, counts = data["timings_ms"], data["embeddings"]
    if counts["computed"] == 0:
        images = f"All {data['images']} photo embeddings from the cache: only the text encoder ran"
    else:
        images = (
            f"{counts['computed']} of {data['images']} photo embeddings computed "
            f"(image encoder **{timings['image_encoder']:.0f} ms**)"
            + (f", {counts['cached']} from the cache" if counts["cached"] else "")
        )
    line = (
        f"{images} · text encoder **{timings['text_encoder']:.0f} ms** · preprocessing "
        f"{timings['preprocess']:.0f} ms on {data['device']}{_load_line(timings)}."
    )
    notes = "".join(f"\n- {note}" for note in data["notes"])
    return line + notes


def _shown(file: str) -> str | Image.Image:
    """The upload as the gallery shows it: the file itself in a format browsers show, else decoded."""
    with Image.open(file) as probe:
        if probe.format in WEB_FORMATS:
            return file
    picture = load_image(file)
    picture.thumbnail((512, 512))
    return picture


@user_errors("show the photos")
def show_search(files: list[str] | None, data: dict[str, Any] | None) -> tuple[list[tuple[Any, str]], str]:
    if not data or not files:
        return [], ""
    items = [
        (
            _shown(files[match["index"]]),
            f"#{match['rank']} {_short(Path(files[match['index']]).name, 40)} · cosine {match['cosine']:.3f} · "
            f"{match['probability']:.0%}",
        )
        for match in data["ranking"]
    ]
    return items, search_summary(data)


# --- layout -------------------------------------------------------------------------------------------


def _label_outputs(elem_prefix: str) -> tuple[gr.Label, gr.Dataframe, gr.Markdown, gr.JSON]:
    bars = gr.Label(num_top_classes=core_zero_shot.MAX_LABELS, label="Probabilities", elem_id=f"{elem_prefix}-bars")
    summary_text = gr.Markdown(elem_id=f"{elem_prefix}-summary")
    table = gr.Dataframe(
        headers=["label", "prompt", "probability", "cosine"],
        datatype=["str", "str", "number", "number"],
        label="Cosine similarities (and the probabilities they give)",
        interactive=False,
        elem_id=f"{elem_prefix}-table",
    )
    return bars, table, summary_text, api_json()


def _scored_labels(
    image: Any, run: gr.Button, fn: ZeroShotFn, inputs: list[Any], api_name: str, show: Callable[..., Any], elem: str
) -> None:
    """The views of a labels-for-one-photo endpoint under the controls, and their events: a new photo
    clears the result, `run` calls `fn` (`api_name`), `show` fills the views from the result."""
    bars, table, summary_text, result = _label_outputs(elem)
    ui_only(image.change, lambda: None, outputs=result)
    run_model(run, fn, [image, *inputs], result, api_name, bars)
    ui_only(result.change, show, inputs=result, outputs=[bars, table, summary_text])


def _build_labels(zero_shot_fn: ZeroShotFn) -> None:
    with beside_photo(*PHOTOS, height=320) as image:
        labels = gr.Textbox(
            value=DEFAULT_LABELS,
            lines=5,
            max_lines=12,
            label="Labels",
            info=LABELS_INFO,
            elem_id="zero-shot-labels",
        )
        template = gr.Textbox(
            value=core_zero_shot.DEFAULT_TEMPLATE, label="Prompt template", info=TEMPLATE_INFO, max_lines=1
        )
        gr.Examples(examples=LABEL_EXAMPLES, inputs=[labels, template], label="Example label lists")
        run = gr.Button("Score the labels", variant="primary")
    _scored_labels(image, run, zero_shot_fn, [labels, template], "zero_shot", show_labels, "zero-shot")


def _build_search(search_fn: ZeroShotFn, captions_fn: ZeroShotFn) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            files = FileUpload(file_count="multiple", file_types=["image"], type="filepath", label="Photos", height=200)
            gr.Examples(examples=[[example_paths(*PHOTOS)]], inputs=files, label="Example photos")
        with gr.Column(scale=3):
            query = gr.Textbox(
                value=DEFAULT_QUERY,
                label="Query",
                max_lines=2,
                info="In Italian, e.g. 'un gatto' (a cat), 'una bevanda calda' (a hot drink), 'lo spazio' (space).",
                elem_id="zero-shot-query",
            )
            top_k = gr.Slider(1, core_zero_shot.MAX_IMAGES, value=DEFAULT_TOP_K, step=1, label="Photos to show")
            run = gr.Button("Search", variant="primary")
    gallery = gr.Gallery(label="Best matches first", columns=4, height=320, elem_id="zero-shot-gallery")
    timing = gr.Markdown(elem_id="zero-shot-search-summary")
    result = api_json()
    run_model(run, search_fn, [files, query, top_k], result, "search_images", gallery).success(
        show_search, inputs=[files, result], outputs=[gallery, timing], api_visibility="private"
    )

    gr.Markdown("### The other way: rank captions for one photo")
    with beside_photo(*PHOTOS, label="Photo", height=260) as image:
        captions = gr.Textbox(
            value=DEFAULT_CAPTIONS,
            lines=4,
            max_lines=12,
            label="Captions",
            info=(
                "One per line, in Italian: 'un gatto sdraiato su una coperta' (a cat lying on a blanket), "
                "'una tazza di caffè su un piattino' (a cup of coffee on a saucer)."
            ),
        )
        rank = gr.Button("Rank the captions", variant="primary")
    _scored_labels(image, rank, captions_fn, [captions], "rank_captions", show_captions, "zero-shot-captions")


def build(
    zero_shot_fn: ZeroShotFn = zero_shot_classify,
    search_fn: ZeroShotFn = search_images,
    captions_fn: ZeroShotFn = rank_captions,
) -> None:
    """Lay out the sub-tab inside the current Blocks context."""
    gr.Markdown(ITALIAN_NOTE, elem_id="zero-shot-italian")
    with gr.Tabs():
        with gr.Tab("Your own labels", id="zero-shot-labels-tab", elem_id="tab-zero-shot-labels"):
            _build_labels(zero_shot_fn)
        with gr.Tab("Search by text", id="zero-shot-search-tab", elem_id="tab-zero-shot-search"):
            _build_search(search_fn, captions_fn)


def create_demo(
    zero_shot_fn: ZeroShotFn = zero_shot_classify,
    search_fn: ZeroShotFn = search_images,
    captions_fn: ZeroShotFn = rank_captions,
) -> gr.Blocks:
    return standalone("Zero-shot", build, zero_shot_fn, search_fn, captions_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
