"""A tiny Perceiver IO multimodal autoencoder like deepmind/multimodal-perceiver."""

from __future__ import annotations

from typing import Any

from core.tiny.common import named_labels


def tiny_multimodal_perceiver() -> tuple[Any]:
    """A tiny PerceiverForMultimodalAutoencoding config with the checkpoint's input geometry: 16 frames
    of 224x224 (output_shape), 1920 samples per frame in patches of 16 (30720 at 48 kHz), the Kinetics-700
    names, and d_model 704, which the geometry fixes (the widest modality, the 700-channel label, plus
    4 channels of padding). image_size stays at PerceiverConfig's default 56, as the conversion script
    leaves it: it is the Fourier resolution of the 56x56 grid of 4x4 patches. Small: 16 latents of 32
    channels, one self-attention layer, 32 output channels, label queries of 32 channels (1024 in the
    checkpoint, the widest query there; here the audio query's 385 channels are). No preprocessor: the
    checkpoint ships none, core.video_autoencode prepares the inputs."""
    from transformers import PerceiverConfig

    config = PerceiverConfig(
        num_latents=16,
        d_latents=32,
        d_model=704,
        num_blocks=1,
        num_self_attends_per_block=1,
        num_self_attention_heads=2,
        num_cross_attention_heads=1,
        num_frames=16,
        audio_samples_per_frame=1920,
        samples_per_patch=16,
        output_shape=[1, 16, 224, 224],
        output_num_channels=32,
        _label_trainable_num_channels=32,
        **named_labels("kinetics-700"),
    )
    return (config,)
