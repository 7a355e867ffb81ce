"""Inside › Masked patches: BEiT's pre-training task on your photo (core/masked_image.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core import masked_image as core_masked
from core.images import load_image
from core.masking import DEFAULT_SHARE, MASK_KINDS, MAX_SHARE, MIN_SHARE, format_patch_list, parse_patch_list
from core.registry import get_spec
from tabs.components import as_files, on_gpu, output_dir, photo_with_examples, user_errors

MaskedFn = Callable[..., tuple[list[tuple[str, str]], dict[str, Any]]]
MASK_INFO = {
    "blockwise": "BEiT's own masks: blocks of at least 16 patches, as in its pre-training.",
    "random": "Patches chosen at random.",
    "patches": "The patches you click on the grid (or list by number).",
}


@user_errors("predict the masked patches")
@on_gpu(duration=60)
def predict_masked_patches(
    image: str | None,
    mask_kind: str = "blockwise",
    share: float = DEFAULT_SHARE,
    seed: float = 0,
    patches: str = "",
    progress: gr.Progress = gr.Progress(),
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Mask patches of a photo and let BEiT (microsoft/beit-base-patch16-224-pt22k) predict the DALL-E visual
    token of each masked patch, as in its pre-training.

    Args:
        image: the photo (any common format); BEiT reads it resized to 224x224, as 14x14 patches of 16 px.
        mask_kind: "blockwise" (BEiT's pre-training masks: blocks of at least 16 patches), "random", or
            "patches" (the patch list).
        share: for "blockwise" and "random", the share of the 196 patches to mask (0.02-0.9; BEiT used
            75 of 196, about 0.4).
        seed: repeats a "blockwise" or "random" mask (0 to 2147483647).
        patches: for "patches", patch numbers from 0 to 195, row by row from the top left, e.g. "0, 1, 14, 15".

    Returns:
        The pictures with captions (original | masked, and with the DALL-E VAE its reconstructions from the
        true tokens and with the predicted tokens in the masked patches; confidence and entropy maps; which
        patches were right; a histogram of the predicted tokens) and a dict {"grid", "mask", "masked_patches",
        "predictions": [{"patch", "row", "col", "token", "confidence", "entropy_bits", "top5", "true_token",
        "correct"}], "confidence_map", "entropy_map_bits", "predicted_token_counts", "vae": {"present",
        "true_tokens", "top1_accuracy", "top5_accuracy"} or {"present": false, "note"}, "timings_ms"}.
    """
    rgb = load_image(image)
    result = core_masked.masked_image(rgb, mask_kind, share, seed, patches, progress=lambda f, m: progress(f, desc=m))
    return as_files(result.pictures, output_dir("masked-image"), "masked"), result.to_dict()


def summary(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    rows, cols = data["grid"]
    how = data["mask_kind"] + ("" if data["seed"] is None else f", seed {data['seed']}")
    line = (
        f"**{data['num_masked']} of {rows * cols} patches masked** ({how}) · "
        f"{data['distinct_predicted_tokens']} different token{'s' if data['distinct_predicted_tokens'] != 1 else ''} "
        "predicted · "
        f"model {data['timings_ms']['inference']:.0f} ms"
    )
    if data["timings_ms"].get("load") is not None:
        line += f" · loaded in {data['timings_ms']['load'] / 1000:.1f} s"
    vae = data["vae"]
    if vae["present"]:
        line += (
            f"\n\nAgainst the DALL-E VAE's tokens ({vae['source']}): **top-1 {vae['top1_accuracy']:.1%}**, "
            f"top-5 {vae['top5_accuracy']:.1%} of the masked patches predicted right."
        )
    else:
        line += f"\n\n{vae['note']}"
    return line


@user_errors("draw the patch grid")
def draw_picker(image: str | None, patches: str) -> Any:
    if not image:
        return None
    try:
        chosen = parse_patch_list(patches, core_masked.GRID)
    except Exception:
        chosen = []
    return core_masked.patch_picker(load_image(image), chosen)


def pick_patch(patches: str, evt: gr.SelectData) -> tuple[str, str]:
    """A click on the grid: toggle that patch, and switch the mask to the chosen patches."""
    try:
        chosen = parse_patch_list(patches, core_masked.GRID)
    except Exception:
        chosen = []
    x, y = evt.index
    return format_patch_list(core_masked.toggle_patch(chosen, core_masked.patch_at(x, y))), "patches"


def build(masked_fn: MaskedFn = predict_masked_patches) -> None:
    """Lay out the sub-tab inside the current Blocks context."""
    spec = get_spec(core_masked.MODEL_KEY)
    with gr.Row():
        with gr.Column(scale=1):
            image = photo_with_examples("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "grace_hopper.jpg")
        with gr.Column(scale=1):
            picker = gr.Image(
                label="Click patches to mask them (BEiT's 14×14 grid over its 224×224 view)",
                type="numpy",
                height=360,
                interactive=False,
                elem_id="inside-picker",
            )
    with gr.Row():
        mask_kind = gr.Radio(list(MASK_KINDS), value="blockwise", label="Mask", info=MASK_INFO["blockwise"])
        share = gr.Slider(
            MIN_SHARE,
            MAX_SHARE,
            value=DEFAULT_SHARE,
            step=0.01,
            label="Share of patches to mask",
            info="blockwise and random; BEiT's pre-training masked 75 of 196 (0.38)",
        )
        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", info="repeats a mask")
    with gr.Row():
        patches = gr.Textbox(
            value="",
            label="Patches (for 'patches')",
            info="0-195, row by row from the top left; clicking the grid fills this",
            elem_id="inside-patches",
            scale=4,
        )
        clear = gr.Button("Clear patches", scale=1)
    run = gr.Button("Predict the masked patches", variant="primary")
    with gr.Accordion("About this model and the DALL-E tokenizer", open=False):
        gr.Markdown(
            f"**{spec.name}** (`{spec.hub_id}`): {spec.description} It reads the photo as 14×14 patches; a "
            "masked patch's embedding is replaced by a learned mask token, and the model predicts which of the "
            "8192 tokens of OpenAI's DALL-E discrete VAE the VAE gives that patch (BEiT's pre-training reads the "
            "whole photo at 112×112 through the VAE: one token per 8×8 pixels). The model is known to favour "
            "a few tokens: the histogram shows it as it is.\n\n"
            + core_masked.WITHOUT_VAE.replace(
                "The DALL-E tokenizer is not installed, so", "Without the DALL-E tokenizer,"
            )
        )
    status = gr.Markdown(elem_id="inside-masked-summary")
    gallery = gr.Gallery(
        label="Pictures (click one to enlarge)",
        columns=2,
        format="png",
        object_fit="contain",
        height="fit-content",
        elem_id="inside-masked-gallery",
    )
    with gr.Accordion("Result as JSON (what the API returns)", open=False):
        result = gr.JSON(show_label=False)

    image.change(draw_picker, inputs=[image, patches], outputs=picker, api_visibility="private", queue=False).then(
        lambda: (None, None, ""), outputs=[gallery, result, status], api_visibility="private", queue=False
    )
    patches.change(draw_picker, inputs=[image, patches], outputs=picker, api_visibility="private", queue=False)
    picker.select(pick_patch, inputs=patches, outputs=[patches, mask_kind], api_visibility="private", queue=False)
    clear.click(lambda: "", outputs=patches, api_visibility="private", queue=False)
    mask_kind.change(
        lambda kind: gr.Radio(info=MASK_INFO[kind]),
        inputs=mask_kind,
        outputs=mask_kind,
        api_visibility="private",
        queue=False,
    )
    run.click(
        masked_fn,
        inputs=[image, mask_kind, share, seed, patches],
        outputs=[gallery, result],
        api_name="masked_image",
        concurrency_id="models",
        show_progress_on=status,
    ).success(summary, inputs=result, outputs=status, api_visibility="private")
