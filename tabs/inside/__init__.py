"""Inside tab: what happens inside vision transformers. Two sub-tabs: BEiT's masked image modeling
(masked.py) and the attention of the Classify tab's models (attention.py)."""

from __future__ import annotations

import gradio as gr

from tabs.components import standalone
from tabs.inside import attention, masked
from tabs.inside.attention import AttentionFn, show_attention
from tabs.inside.masked import MaskedFn, predict_masked_patches

__all__ = ["build", "create_demo", "predict_masked_patches", "show_attention"]


def build(masked_fn: MaskedFn = predict_masked_patches, attention_fn: AttentionFn = show_attention) -> None:
    """Lay out the tab inside the current Blocks context."""
    with gr.Tabs():
        with gr.Tab("Masked patches (BEiT)", id="inside-masked", elem_id="tab-inside-masked"):
            masked.build(masked_fn)
        with gr.Tab("Attention", id="inside-attention", elem_id="tab-inside-attention"):
            attention.build(attention_fn)


def create_demo(masked_fn: MaskedFn = predict_masked_patches, attention_fn: AttentionFn = show_attention) -> gr.Blocks:
    return standalone("Inside", build, masked_fn, attention_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
