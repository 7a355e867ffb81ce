"""The Video tab's core: reading a window of a clip (frames at 25 fps, crop, sound at 48 kHz), leaving a
modality out, decoding from one encoding (equal to the documented 128-pass loop), and bad clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_clips import lavfi_clip, numbered_clip

from core import video_model as vm
from core.errors import InputError
from core.lazy import torch
from core.settings import reset_settings
from core.video_autoencode import leave_out, pick_frames, prepare_window, psnr_per_frame, snr_db, square_224

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "video_tones.mp4"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    truncated = folder / "truncated.mp4"
    whole = lavfi_clip(folder / "whole.mp4", seconds=2)
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    return {
        "numbered": numbered_clip(folder / "numbered.mp4"),
        "tone": lavfi_clip(folder / "tone.mp4", seconds=1.5, fps=30, rate=44100),
        "short": lavfi_clip(folder / "short.mp4", seconds=0.4),
        "silent": lavfi_clip(folder / "silent.mp4", seconds=1, tone=None),
        "portrait": lavfi_clip(folder / "portrait.mp4", size="64x112"),
        "tiny": lavfi_clip(folder / "tiny.mp4", size="8x8", video="color=c=gray"),
        "huge": lavfi_clip(folder / "huge.mp4", seconds=0.7, size="2400x1600", video="color=c=red"),
        "vfr": lavfi_clip(
            folder / "vfr.mp4",
            seconds=2,
            fps=50,
            tone=None,
            extra=("-vf", "setpts='if(lt(N,25),N/50,0.5+(N-25)/25)/TB'", "-fps_mode", "vfr"),
        ),
        "truncated": truncated,
        "long": lavfi_clip(folder / "long.mp4", seconds=4, size="32x32", tone=None),
    }


def test_frames_are_picked_at_25_fps_and_centre_cropped(clips: dict[str, Path]) -> None:
    window = prepare_window(clips["numbered"], 0.2)  # 50 fps, frame i grey at 4 * i, red bands outside
    assert window.frames.shape == (16, 224, 224, 3) and window.frames.dtype == np.float32
    assert window.frame_times == pytest.approx([0.2 + k / 25 for k in range(16)], abs=1e-6)
    levels = window.frames.mean(axis=(1, 2)) * 255
    np.testing.assert_allclose(levels, np.stack([40 + 8 * np.arange(16)] * 3, 1), atol=3)  # grey: no red band
    assert window.frames.min() >= 0 and window.frames.max() <= 1
    assert any("50 fps" in note for note in window.notes)
    assert any("no sound track" in note for note in window.notes) and not window.audio.any()


def test_pick_frames_takes_the_frame_shown_at_each_moment() -> None:
    assert pick_frames([0.0, 0.1, 0.3], 0.0, count=4, fps=10) == [0, 1, 1, 2]
    assert pick_frames([0.5, 0.6], 0.0, count=2, fps=10) == [0, 0]


def test_square_224_crops_the_centre() -> None:
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[:, 100:200] = 255
    assert square_224(frame).min() == 1.0
    assert square_224(np.zeros((2000, 1000, 3), np.uint8)).shape == (224, 224, 3)


def test_sound_is_resampled_to_48_khz_mono_in_range(clips: dict[str, Path]) -> None:
    window = prepare_window(clips["tone"], 0.5)  # a 1000 Hz stereo sine at 44.1 kHz, amplitude 1/8
    assert window.has_audio and window.audio.shape == (vm.SAMPLES,) and window.audio.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(window.audio))
    assert np.fft.rfftfreq(vm.SAMPLES, 1 / vm.RATE)[spectrum.argmax()] == pytest.approx(1000, abs=3)
    assert np.abs(window.audio).max() == pytest.approx(0.125, abs=0.02)
    assert window.frame_times[0] == pytest.approx(0.5, abs=1 / 30)
    assert any("30 fps" in note for note in window.notes)


def test_variable_frame_rate_follows_the_timestamps(clips: dict[str, Path]) -> None:
    window = prepare_window(clips["vfr"], 2.0)  # 50 fps for 0.5 s, then 25 fps: 3.5 s in all
    assert window.clip["seconds"] == pytest.approx(3.5, abs=0.05)
    assert window.frame_times[0] == pytest.approx(2.0, abs=0.045)
    assert all(2.0 - 0.045 <= t <= 2.64 for t in window.frame_times)
    assert window.frame_times == sorted(window.frame_times)


def test_a_short_clip_repeats_its_last_frame_and_says_so(clips: dict[str, Path]) -> None:
    window = prepare_window(clips["short"], 0)
    assert window.frame_times[-1] == window.frame_times[9] == pytest.approx(0.36)
    np.testing.assert_array_equal(window.frames[10], window.frames[15])
    assert any("repeat its last frame" in note for note in window.notes)
    assert any("The sound ends" in note for note in window.notes)
    assert not window.audio[int(0.45 * vm.RATE) :].any()


def test_a_clip_without_sound_is_silence_and_says_so(clips: dict[str, Path]) -> None:
    window = prepare_window(clips["silent"], 0.1)
    assert not window.has_audio and not window.audio.any() and window.clip["has_audio"] is False
    assert "The clip has no sound track: the model hears silence." in window.notes


def test_portrait_and_huge_frames_work(clips: dict[str, Path]) -> None:
    portrait = prepare_window(clips["portrait"], 0)
    assert portrait.frames.shape == (16, 224, 224, 3)
    assert any("64×112" in note and "enlarged" in note for note in portrait.notes)
    huge = prepare_window(clips["huge"], 0)
    assert huge.clip["size"] == {"width": 2400, "height": 1600}
    assert huge.frames[..., 0].mean() > 0.9 and huge.frames[..., 2].mean() < 0.1


@pytest.mark.parametrize(
    ("name", "start", "message"),
    [
        ("tiny", 0, "the model needs at least 16×16 pixels"),
        ("truncated", 0, "corrupted|could not be decoded|No frames"),
        ("numbered", 5, "start the window before"),
        ("numbered", -1, "Window start"),
        ("numbered", "soon", "Window start"),
    ],
)
def test_bad_clips_and_starts_give_a_clear_message(
    clips: dict[str, Path], name: str, start: object, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        prepare_window(clips[name], start)
    assert prepare_window(clips["numbered"], 0).frames.shape == (16, 224, 224, 3)  # the next request works


def test_files_that_are_not_videos_and_too_long_clips(
    clips: dict[str, Path], tmp_path: Path, fresh_settings: pytest.MonkeyPatch
) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="not a video in a supported format"):
        prepare_window(text, 0)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        prepare_window(empty, 0)
    with pytest.raises(InputError, match="No video was given"):
        prepare_window(None, 0)
    fresh_settings.setenv("PLAYGROUND_VIDEO_MAX_SECONDS", "3")
    reset_settings()
    with pytest.raises(InputError, match="the limit is 3 s"):
        prepare_window(clips["long"], 0)
    assert prepare_window(clips["silent"], 0).frames.shape == (16, 224, 224, 3)


def test_leave_one_out_changes_the_input_as_stated() -> None:
    frames = np.random.default_rng(0).random((16, 224, 224, 3), np.float32)
    audio = np.linspace(-1, 1, vm.SAMPLES, dtype=np.float32)
    same = leave_out(frames, audio, "none")
    assert same[0] is frames and same[1] is audio
    silent = leave_out(frames, audio, "audio")
    assert silent[0] is frames and not silent[1].any() and silent[1].shape == audio.shape
    grey = leave_out(frames, audio, "video")
    assert (grey[0] == 0.5).all() and grey[0].shape == frames.shape and grey[1] is audio
    with pytest.raises(InputError, match="Choose one of: none, audio, video"):
        leave_out(frames, audio, "label")


def test_psnr_and_snr() -> None:
    original = np.full((2, 4, 4, 3), 0.5, np.float32)
    rebuilt = original.copy()
    rebuilt[1] += 0.1
    assert psnr_per_frame(original, rebuilt).tolist() == pytest.approx([100.0, 20.0], abs=1e-4)
    signal = np.ones(100, np.float32)
    assert snr_db(signal, signal * 0.9) == pytest.approx(20.0)
    assert snr_db(np.zeros(10), np.ones(10)) is None


def test_chunks_follow_the_memory_budget() -> None:
    assert vm.chunk_ranges(10, 3) == [(0, 3), (3, 7), (7, 10)]
    from transformers import PerceiverForMultimodalAutoencoding

    from core.tiny.video import tiny_multimodal_perceiver

    model = PerceiverForMultimodalAutoencoding(tiny_multimodal_perceiver()[0])
    assert vm.output_points(model.config) == (16 * 224 * 224, 1920)
    assert vm.chunk_count(model, 2**40) == 1
    assert vm.chunk_count(model, 1) == -(-(802816 + 1920) // vm.MIN_CHUNK_POINTS)  # a floor of points per chunk
    assert vm.memory_budget(torch.device("cpu"), 16) == 16 * 2**20  # the setting, below half the free memory
    per_chunk = (802816 + 1920) / vm.chunk_count(model, 256 * 2**20)
    assert per_chunk * vm.bytes_per_point(model) <= 256 * 2**20


def test_reusing_the_latents_equals_the_documented_loop() -> None:
    """One encoding, decoded in 7 chunks, against transformers' documented loop (the whole model per chunk,
    128 chunks): equal within 1e-4 on the tiny model's chunks 0, 1, 64 and 127 (four passes of the loop
    keep the test short; every pass decodes its points the same way; all 128 passes, run once on this tiny
    model, took 6 minutes here and differed by at most 9.5e-9 over the whole output). The image points go
    through the factored decoder (core.video_decoder); the model's own decoder on the same latents agrees too."""
    from transformers import PerceiverForMultimodalAutoencoding

    from core.perceiver_attention import use_sdpa_attention
    from core.tiny.video import tiny_multimodal_perceiver

    torch.manual_seed(0)
    model = PerceiverForMultimodalAutoencoding(tiny_multimodal_perceiver()[0]).eval()
    rng = np.random.default_rng(0)
    frames = rng.random((16, 224, 224, 3), np.float32)
    inputs = vm.model_inputs(frames, rng.uniform(-1, 1, vm.SAMPLES).astype(np.float32))
    chunks = [0, 1, 64, 127]
    reference = vm.documented_loop(model, inputs, indices=chunks)
    use_sdpa_attention(model)  # as the app runs it
    reported: list[float] = []
    ours = vm.autoencode(model, inputs, 7, progress=lambda fraction, message: reported.append(fraction))
    assert ours.chunks == 7 and ours.factored and reported == pytest.approx([(i + 1) / 7 for i in range(7)])
    image_size, audio_size = 802816 // 128, 30720 // 128
    for index in chunks:
        image = slice(image_size * index, image_size * (index + 1))
        audio = slice(audio_size * index, audio_size * (index + 1))
        np.testing.assert_allclose(ours.frames.reshape(-1, 3)[image], reference.frames.reshape(-1, 3)[image], atol=1e-4)
        np.testing.assert_allclose(ours.audio[audio], reference.audio[audio], atol=1e-4)
    np.testing.assert_allclose(ours.logits, reference.logits, atol=1e-4)
    assert ours.frames.shape == (16, 224, 224, 3) and ours.audio.shape == (vm.SAMPLES,) and ours.logits.shape == (700,)
    assert np.abs(ours.frames).max() > 0 and np.abs(ours.audio).max() > 0

    encoded = vm.encode(model, inputs)  # the generic path: the model's own decoder, one chunk
    points = torch.arange(image_size * 64, image_size * 65)
    generic = vm.decode_points(model, encoded, points, torch.arange(audio_size // 16 * 64, audio_size // 16 * 65))
    np.testing.assert_allclose(generic["image"][0].numpy(), reference.frames.reshape(-1, 3)[points.numpy()], atol=1e-4)


def test_the_factored_decoder_refuses_queries_it_cannot_split(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import PerceiverForMultimodalAutoencoding

    from core.tiny.video import tiny_multimodal_perceiver
    from core.video_decoder import FactoredImageDecoder

    torch.manual_seed(0)
    model = PerceiverForMultimodalAutoencoding(tiny_multimodal_perceiver()[0]).eval()
    inputs = vm.model_inputs(np.zeros((16, 224, 224, 3), np.float32), np.zeros(vm.SAMPLES, np.float32))
    encoded = vm.encode(model, inputs)
    assert FactoredImageDecoder.build(model, encoded) is not None
    decoder = model.perceiver.decoder
    original = decoder.decoder_query

    def mixed(*args: object, **kwargs: object) -> torch.Tensor:
        query = original(*args, **kwargs)
        return query + query[..., :1] * query[..., 1:2]  # channel 0 now depends on two axes

    monkeypatch.setattr(decoder, "decoder_query", mixed)
    assert FactoredImageDecoder.build(model, encoded) is None


def test_the_benchmark_builds_the_real_architecture() -> None:
    from transformers import PerceiverConfig, PerceiverForMultimodalAutoencoding

    from benchmarks.video_autoencode import FULL_SIZE
    from core.registry import get_spec

    with torch.device("meta"):
        model = PerceiverForMultimodalAutoencoding(PerceiverConfig(**FULL_SIZE))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(
        get_spec("multimodal-perceiver").params_millions, rel=0.01
    )
    assert model.perceiver.decoder.num_query_channels == 1026  # the label query's 1024 channels + 2 of padding


def test_the_ci_endpoint_run_gives_the_video_endpoint_a_clip_with_sound() -> None:
    import importlib.util

    from core.video import read_audio

    spec = importlib.util.spec_from_file_location("call_every_endpoint", ROOT / ".ci" / "call_every_endpoint.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    parameters = [
        {"component": "Video", "parameter_name": "video", "parameter_has_default": False},
        {
            "component": "Slider",
            "parameter_name": "window_start",
            "parameter_has_default": True,
            "parameter_default": 0,
        },
        {
            "component": "Radio",
            "parameter_name": "leave_out",
            "parameter_has_default": True,
            "parameter_default": "none",
        },
    ]
    clip, start, leave = module.example_arguments(parameters)
    assert Path(clip["path"]) == EXAMPLE and (start, leave) == (0, "none")
    assert read_audio(EXAMPLE, rate=vm.RATE, max_seconds=5) is not None
