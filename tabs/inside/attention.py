"""Inside › Attention: where the Classify tab's BEiT, Perceiver IO and LeViT models look (core/attention/)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from core import attention as core_attention
from core import checks, plots
from core.images import load_image
from core.registry import get_spec
from tabs.components import (
    api_json,
    as_files,
    beside_photo,
    model_picker,
    on_gpu,
    output_dir,
    run_model,
    ui_only,
    user_errors,
)

AttentionFn = Callable[..., tuple[str, str, str, dict[str, Any], Any]]
DEFAULT_MODEL = "beit-base-224"
HEADS = ["mean", *map(str, range(1, 25))]
METHOD_INFO = {
    "BEiT": "BEiT: 'last layer' (the chosen layer) or 'rollout' (through the layers up to the chosen one).",
    "Perceiver": "Perceiver IO: 'latents' (all, or the ones you list) or 'classifier' (weighted by the "
    "classification query's attention over the latents).",
    "LeViT": "LeViT: 'last layer' (the chosen attention layer, through forward hooks).",
}


@user_errors("show the attention")
@on_gpu(duration=60)
def show_attention(
    image: str | None,
    model: str = DEFAULT_MODEL,
    layer: float = 0,
    head: str = "mean",
    method: str = "last layer",
    latents: str = "",
    opacity: float = core_attention.DEFAULT_OPACITY,
    progress: gr.Progress = gr.Progress(),
) -> tuple[str, str, str, dict[str, Any], Any]:
    """Attention maps of a Classify model over a photo: BEiT (class token per layer and head, rollout),
    Perceiver IO (cross-attention of its latents over the input), LeViT (attention per layer and head).

    Args:
        image: the photo (any common format).
        model: a Classify model key: "beit-base-224", "beit-base-224-22k", "levit-128S" (128, 192, 256, 384),
            "perceiver-learned", "perceiver-fourier" or "perceiver-conv".
        layer: the attention layer, from 1; 0 = the last (BEiT, LeViT; for rollout: up to this layer).
        head: "mean" (of all heads) or a head number from 1.
        method: BEiT: "last layer" or "rollout"; LeViT: "last layer"; Perceiver: "latents" or "classifier".
        latents: Perceiver, method "latents": latent numbers (from 0), e.g. "0, 17, 300"; empty = all.
        opacity: of the heat map over the photo (0-1).

    Returns:
        The overlay on the image as the model saw it, the heat map with its colour bar, the small maps (per
        head, or per latent for Perceiver) and a dict {"model", "method", "title", "layer", "head", "grid",
        "map" (the map's values on its grid, sum-pooled when larger than 56 per side: "map_pooling"),
        "map_sum", "class_token_share" (BEiT), "classifier_weights_top" (Perceiver), "stage" (LeViT), ...}.
    """
    rgb = load_image(image)
    opacity = _opacity(opacity)
    result = core_attention.attention(
        rgb, model, layer, head, method, latents, progress=lambda f, m: progress(f, desc=m)
    )
    pictures = [
        (result.overlay(opacity), "overlay"),
        (result.heat_map(), "heat map"),
        (result.maps_picture(), result.small_maps_title),
    ]
    overlay, heat, small = (path for path, _ in as_files(pictures, output_dir("attention"), "attention"))
    return overlay, heat, small, result.to_dict(), (result.view, result.map)


def _opacity(value: Any) -> float:
    return checks.number(value, "Opacity", 0, 1)


@user_errors("redraw the overlay")
def redraw_overlay(state: Any, opacity: float) -> Any:
    if not state:
        return gr.skip()
    view, grid = state
    return plots.overlay(np.asarray(view), np.asarray(grid), _opacity(opacity))


def summary(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    line = (
        f"**{data['name']}** · {data['title']} · map {data['grid'][0]}×{data['grid'][1]}, sums to {data['map_sum']:.4f}"
    )
    if "class_token_share" in data:
        line += f" (the class token keeps {data['class_token_share']:.3f} for itself)"
    timings = data["timings_ms"]
    line += f" · {timings['inference']:.0f} ms"
    if timings.get("load") is not None:
        line += f" · loaded in {timings['load'] / 1000:.1f} s"
    return line + f"\n\n<small>{data['note']}</small>"


def _controls_for(model: str) -> tuple[Any, Any, Any]:
    family = get_spec(model).family
    methods = core_attention.METHODS_BY_FAMILY[family]
    return (
        gr.Radio(value=methods[0], info=METHOD_INFO[family]),
        gr.Textbox(visible=family == "Perceiver"),
        gr.Slider(interactive=family != "Perceiver"),
    )


def build(attention_fn: AttentionFn = show_attention) -> None:
    """Lay out the sub-tab inside the current Blocks context."""
    specs = core_attention.attention_models()
    with beside_photo("chelsea.jpg", "coffee.jpg", "grace_hopper.jpg", "astronaut.jpg") as image:
        model = model_picker(specs, DEFAULT_MODEL, "The Classify tab's models (the same loaded copy).")
        method = gr.Radio(list(core_attention.METHODS), value="last layer", label="Method", info=METHOD_INFO["BEiT"])
        with gr.Row():
            layer = gr.Slider(0, 24, value=0, step=1, label="Layer", info="0 = the last; BEiT-base has 12, LeViT 11-14")
            head = gr.Dropdown(HEADS, value="mean", label="Head", allow_custom_value=True)
        latents = gr.Textbox(
            value="", label="Latents (Perceiver, 'latents')", info="e.g. 0, 17, 300; empty = all", visible=False
        )
        opacity = gr.Slider(0, 1, value=core_attention.DEFAULT_OPACITY, step=0.05, label="Overlay opacity")
        run = gr.Button("Show attention", variant="primary")
    status = gr.Markdown(elem_id="inside-attention-summary")
    with gr.Row():
        overlay = gr.Image(label="Over the image as the model saw it", interactive=False, elem_id="inside-overlay")
        heat = gr.Image(label="Heat map", interactive=False, elem_id="inside-heatmap")
    small = gr.Image(label="Per head / per latent", interactive=False, elem_id="inside-small-maps")
    result = api_json()
    view_and_map = gr.State()

    ui_only(model.change, _controls_for, inputs=model, outputs=[method, latents, layer])
    outputs = [overlay, heat, small, result, view_and_map]
    ui_only(image.change, lambda: (None, None, None, None, None, ""), outputs=[*outputs, status])
    inputs = [image, model, layer, head, method, latents, opacity]
    run_model(run, attention_fn, inputs, outputs, "attention", status).success(
        summary, inputs=result, outputs=status, api_visibility="private"
    )
    opacity.release(
        redraw_overlay,
        inputs=[view_and_map, opacity],
        outputs=overlay,
        api_visibility="private",
        concurrency_id="render",
        concurrency_limit=4,
    )
