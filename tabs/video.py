"""Video tab: a 0.64 s window of a clip with its sound, autoencoded by Perceiver IO (multimodal), with its
Kinetics-700 labels; leave the sound or the frames out and see what the model makes of the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from core import video_autoencode as core_video
from core.settings import get_settings
from core.video import probe_seconds
from tabs.components import as_files, clip_with_example, on_gpu, output_dir, standalone, user_errors

WINDOW = 0.64
STEP = 0.04
LEAVE_OUT_CHOICES = [
    ("Nothing", "none"),
    ("The sound (silence instead)", "audio"),
    ("The frames (grey instead)", "video"),
]
VideoFn = Callable[..., tuple[str, str, dict[str, Any], dict[str, Any]]]


@user_errors("autoencode the clip")
@on_gpu(duration=300)
def autoencode_video(
    video: str | None, window_start: float, leave_out: str, progress: gr.Progress = gr.Progress()
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Reconstruct 0.64 s of a clip (16 frames at 25 fps and their sound) with Perceiver IO multimodal
    autoencoding, and classify it (Kinetics-700).

    Args:
        video: the clip (MP4, MOV, WebM, MKV or AVI) with or without sound, within the app's length limit.
        window_start: where the 0.64 s window starts, in seconds.
        leave_out: "none", "audio" (silence instead of the sound) or "video" (grey frames), before encoding.

    Returns:
        An mp4 of original | reconstruction | error (at half speed, three times), the reconstructed sound
        as a WAV file (48 kHz mono), and a dict {"labels": [{"label", "score"}] (top 5), "psnr_per_frame",
        "mean_psnr", "audio_snr_db", "window": {"start_s", "end_s", "frame_times_s"}, "chunks", "timings_ms",
        "clip", "notes", "leave_out", "device"}.
    """
    folder = output_dir("video")
    result = core_video.video_autoencode(
        video, window_start, leave_out, out_dir=folder, progress=lambda f, m: progress(f, desc=m)
    )
    pictures = as_files(
        [(result.grid, "frames"), (result.sound, "sound"), (result.psnr, "psnr")], folder, "video-figure"
    )
    extras = {"pictures": [path for path, _ in pictures], "original_audio": str(result.original_audio)}
    return str(result.video), str(result.audio), result.info, extras


def window_slider(video: str | None) -> gr.Slider:
    """The window-start slider for an uploaded clip: from 0 to its length less 0.64 s."""
    seconds = probe_seconds(video) if video else None
    top = max(0.0, round((seconds or WINDOW) - WINDOW, 2))
    return gr.Slider(maximum=max(top, STEP), value=0, interactive=top > 0)


def summary(info: dict[str, Any] | None) -> str:
    if not info:
        return ""
    top = info["labels"][0]
    snr = info["audio_snr_db"]
    window = info["window"]
    line = (
        f"**Mean PSNR {info['mean_psnr']:.2f} dB** over the 16 frames · "
        f"**sound SNR {'n/a' if snr is None else f'{snr:.2f} dB'}** · "
        f"top label *{top['label']}* ({top['score']:.1%}) · window {window['start_s']:.2f}–{window['end_s']:.2f} s · "
        f"{info['chunks']['count']} decoder chunks from one encoding "
        f"({info['timings_ms']['encode'] / 1000:.1f} s encode, {info['timings_ms']['decode'] / 1000:.1f} s decode, "
        f"{info['device']})"
    )
    if info["leave_out"] != "none":
        line += f" · left out: **{info['leave_out']}**"
    notes = "".join(f"\n- {note}" for note in info["notes"])
    return line + ("\n" + notes if notes else "")


def show_extras(info: dict[str, Any] | None, extras: dict[str, Any] | None) -> tuple[Any, ...]:
    if not info or not extras:
        return None, None, None, None, None, ""
    labels = {item["label"]: item["score"] for item in info["labels"]}
    grid, sound, psnr = extras["pictures"]
    return labels, grid, sound, psnr, extras["original_audio"], summary(info)


def build(video_fn: VideoFn = autoencode_video) -> None:
    """Lay out the tab inside the current Blocks context."""
    settings = get_settings()
    with gr.Row():
        with gr.Column():
            clip = clip_with_example(
                "video_tones.mp4",
                "Example: a moving test pattern with a note every half second",
                "video-examples",
                label="Clip (with or without sound)",
            )
        with gr.Column():
            # enabled once a clip is in and its length known (window_slider), never before
            start = gr.Slider(
                0,
                3 - WINDOW,
                value=0,
                step=STEP,
                label="Window start (s)",
                interactive=False,
                elem_id="video-start",
            )
            leave = gr.Radio(LEAVE_OUT_CHOICES, value="none", label="Leave out before encoding")
            gr.Markdown(
                "The model reads 16 frames at 25 fps (0.64 s, centre square at 224×224) and the same 0.64 s of "
                f"sound at 48 kHz. Clips up to {settings.video_max_seconds:g} s."
            )
            run = gr.Button("Autoencode", variant="primary")
    summary_line = gr.Markdown(elem_id="video-summary")
    with gr.Row():
        movie = gr.Video(
            label="Original | reconstruction | error (half speed)", interactive=False, autoplay=True, loop=True
        )
        labels = gr.Label(num_top_classes=core_video.TOP_K, label="Kinetics-700 (top 5)", elem_id="video-labels")
    # the figures carry their own titles; Gradio's label chip would cover them
    grid = gr.Image(label="The 16 frames", show_label=False, type="filepath", interactive=False)
    with gr.Row():
        original_audio = gr.Audio(label="Sound: original window", type="filepath", interactive=False)
        rebuilt_audio = gr.Audio(label="Sound: reconstruction", type="filepath", interactive=False)
    with gr.Row():
        sound = gr.Image(label="Waveform and spectrogram", show_label=False, type="filepath", interactive=False)
        psnr = gr.Image(label="PSNR per frame", show_label=False, type="filepath", interactive=False)
    with gr.Accordion("Numbers as JSON (what the API returns)", open=False):
        info = gr.JSON(label="video_autoencode", show_label=False)
    extras = gr.State()

    clip.change(window_slider, inputs=clip, outputs=start, api_visibility="private", queue=False)
    run.click(
        video_fn,
        inputs=[clip, start, leave],
        outputs=[movie, rebuilt_audio, info, extras],
        api_name="video_autoencode",
        concurrency_id="models",
        show_progress_on=summary_line,
    ).success(
        show_extras,
        inputs=[info, extras],
        outputs=[labels, grid, sound, psnr, original_audio, summary_line],
        api_visibility="private",
    )


def create_demo(video_fn: VideoFn = autoencode_video) -> gr.Blocks:
    return standalone("Video", build, video_fn)


if __name__ == "__main__":
    create_demo().queue().launch()
