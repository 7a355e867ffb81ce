"""The Video tab's API through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from video_clips import lavfi_clip

from core.model_spec import label_list

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "assets" / "video_tones.mp4"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def _video(result: object) -> str:
    return result["video"] if isinstance(result, dict) else str(result)


def test_the_endpoint_is_named_with_its_parameters(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    api = endpoints["/video_autoencode"]
    assert [p["parameter_name"] for p in api["parameters"]] == ["video", "window_start", "leave_out"]
    assert len(api["returns"]) == 3


def test_the_example_clip(client: Client) -> None:
    movie, sound, info = client.predict(handle_file(str(EXAMPLE)), 1.0, "none", api_name="/video_autoencode")
    data = Path(_video(movie)).read_bytes()
    assert data[4:8] == b"ftyp" and b"avc1" in data[:4096]  # H.264 in mp4
    with wave.open(sound) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (48000, 1, 30720)
    kinetics = set(label_list("kinetics-700"))
    assert len(info["labels"]) == 5 and all(item["label"] in kinetics for item in info["labels"])
    assert len(info["psnr_per_frame"]) == 16 and info["mean_psnr"] > 0
    assert isinstance(info["audio_snr_db"], float)
    assert info["window"]["start_s"] == 1.0 and info["window"]["end_s"] == 1.64
    assert info["window"]["frame_times_s"][1] == pytest.approx(1.04)
    assert info["chunks"]["encoder_passes"] == 1 and info["chunks"]["documented_passes"] == 128
    assert info["chunks"]["count"] >= 1 and info["chunks"]["factored_image_decoder"] is True
    assert info["chunks"]["audio_patches_per_chunk"] == 1920
    assert {"read", "load", "encode", "decode", "write"} <= set(info["timings_ms"])
    assert info["clip"] == {"seconds": 3.0, "fps": 25.0, "size": {"width": 320, "height": 240}, "has_audio": True}
    assert info["leave_out"] == "none"


def test_a_bad_clip_says_why_and_the_next_request_works(client: Client, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(Exception, match="not a video in a supported format"):
        client.predict(handle_file(str(text)), 0, "none", api_name="/video_autoencode")
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict(handle_file(str(EXAMPLE)), 0, "label", api_name="/video_autoencode")
    silent = lavfi_clip(tmp_path / "silent.mp4", seconds=0.5, size="120x200", tone=None)
    _, sound, info = client.predict(handle_file(str(silent)), 0, "video", api_name="/video_autoencode")
    assert info["leave_out"] == "video" and info["audio_snr_db"] is None
    assert "The clip has no sound track: the model hears silence." in info["notes"]
    assert any("repeat its last frame" in note for note in info["notes"])
    assert Path(sound).is_file()
