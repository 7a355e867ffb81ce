"""The Flow tab's API through gradio_client, against the real app in tiny mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from core.flow import read_flo

ROOT = Path(__file__).resolve().parent.parent
FRAME1 = ROOT / "assets" / "flow_frame1.png"
FRAME2 = ROOT / "assets" / "flow_frame2.png"
CLIP = ROOT / "assets" / "flow_pan.mp4"


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def test_flow_endpoints_are_named(client: Client) -> None:
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/flow"]["parameters"]] == [
        "frame1",
        "frame2",
        "methods",
        "dis_preset",
        "arrow_stride",
    ]
    assert [p["parameter_name"] for p in endpoints["/flow_video"]["parameters"]] == [
        "video",
        "method",
        "dis_preset",
        "frame_step",
    ]


def test_flow_of_the_example_pair(client: Client) -> None:
    data, gallery, files = client.predict(
        handle_file(str(FRAME1)), handle_file(str(FRAME2)), ["dis", "farneback"], "medium", 24, api_name="/flow"
    )
    assert list(data["methods"]) == ["dis", "farneback"]
    dis = data["methods"]["dis"]
    assert dis["name"] == "DIS (medium)" and 5 < dis["mean_magnitude"] < 10
    assert dis["mean_photometric_error"] < data["photometric_error_without_flow"] / 2
    assert len(gallery) == len(data["images"]) == 8
    assert [item["caption"] for item in gallery] == data["images"]
    assert all(Path(item["image"]).is_file() for item in gallery)
    names = [Path(f).name for f in files]
    assert names == data["files"] == ["dis-medium.flo", "dis-medium.npy", "farneback.flo", "farneback.npy"]
    flo, npy = read_flo(files[0]), np.load(files[1])
    assert flo.shape == (288, 384, 2)
    np.testing.assert_array_equal(flo, npy)


def test_perceiver_io_runs_its_tiles_through_the_api(client: Client) -> None:
    data, gallery, files = client.predict(
        handle_file(str(FRAME1)), handle_file(str(FRAME2)), ["perceiver-flow"], "medium", 24, api_name="/flow"
    )
    stats = data["methods"]["perceiver-flow"]
    assert stats["name"] == "Perceiver IO" and stats["tiles"] == 1 and stats["device"] == "cpu"
    assert len(gallery) == 4
    assert read_flo(files[0]).shape == (288, 384, 2)


def test_frames_of_different_sizes_are_refused(client: Client, tmp_path: Path) -> None:
    from PIL import Image

    small = tmp_path / "small.png"
    Image.open(FRAME2).crop((0, 0, 200, 150)).save(small)
    with pytest.raises(Exception, match="Both frames must have the same size"):
        client.predict(handle_file(str(FRAME1)), handle_file(str(small)), ["dis"], "medium", 24, api_name="/flow")
    with pytest.raises(Exception, match="Choose at least one flow method"):
        client.predict(handle_file(str(FRAME1)), handle_file(str(FRAME2)), [], "medium", 24, api_name="/flow")


def test_flow_video_of_the_example_clip(client: Client) -> None:
    video, info = client.predict(handle_file(str(CLIP)), "dis", "fast", 1, api_name="/flow_video")
    path = Path(video["video"] if isinstance(video, dict) else video)
    assert path.suffix == ".mp4" and path.stat().st_size > 1000
    assert info["pairs"] == 15 and info["frames"] == 16 and info["name"] == "DIS (fast)"
    assert len(info["mean_magnitude_per_pair"]) == 15


def test_flow_video_refuses_a_non_video(client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(Exception, match="not a video in a supported format"):
        client.predict(handle_file(str(fake)), "dis", "fast", 1, api_name="/flow_video")
    _, info = client.predict(handle_file(str(CLIP)), "farneback", "fast", 3, api_name="/flow_video")
    assert info["pairs"] == 5
