"""Tests for core.flow, core.render (flow drawing) and core.video: tiling geometry, sub-pixel
truth of the classical methods, the colour wheel, .flo files, warping, the tiny Perceiver IO and video."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core import flow as core_flow
from core import render
from core.errors import InputError
from core.flow import (
    MIN_OVERLAP,
    TILE,
    coverage,
    image_patches,
    padded_size,
    read_flo,
    tile_grid,
    tile_starts,
    tile_weights,
    tiled_flow,
    write_flo,
)
from core.images import load_image
from core.settings import reset_settings
from core.video import read_video, sniff_container, write_mp4

ASSETS = Path(__file__).resolve().parent.parent / "assets"
STEP = (TILE[0] - MIN_OVERLAP, TILE[1] - MIN_OVERLAP)


# --- tiling geometry ------------------------------------------------------------------------------


def _check_starts(length: int, tile: int, starts: list[int]) -> None:
    assert starts[0] == 0 and starts[-1] == length - tile
    assert starts == sorted(set(starts)), "tiles repeat or are out of order"
    gaps = np.diff(starts)
    assert (gaps >= 1).all() and (gaps <= tile - MIN_OVERLAP).all(), "overlap below the minimum"
    assert len(starts) == 1 + math.ceil((length - tile) / (tile - MIN_OVERLAP)), "more tiles than needed"


@pytest.mark.parametrize("tile", TILE)
def test_tile_starts_for_every_length_up_to_4000(tile: int) -> None:
    for length in range(tile, 4001):
        _check_starts(length, tile, tile_starts(length, tile))


def test_tile_starts_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shorter than the tile"):
        tile_starts(367, 368)
    with pytest.raises(ValueError, match="min_overlap"):
        tile_starts(1000, 368, 368)


SIZES = sorted(
    {1, 2, 3, 16, 17, 99, 100, 367, 368, 369, 495, 496, 497, 735, 736, 1079, 1080, 1200}
    | {TILE[0] + k * STEP[0] + d for k in range(4) for d in (-1, 0, 1, 2)}
    | {TILE[1] + k * STEP[1] + d for k in range(3) for d in (-1, 0, 1, 2)}
    | set(np.random.default_rng(0).integers(1, 1201, 12).tolist())
)


@pytest.mark.parametrize("height", SIZES)
def test_grid_covers_every_pixel_inside_the_image(height: int) -> None:
    for width in [*SIZES[::3], SIZES[-1]]:
        ph, pw = padded_size(height, width)
        assert (ph, pw) == (max(height, TILE[0]), max(width, TILE[1]))
        grid = tile_grid(ph, pw)
        assert len(grid) == len(set(grid)), "a tile would be computed twice"
        assert all(0 <= y <= ph - TILE[0] and 0 <= x <= pw - TILE[1] for y, x in grid)
        weight = coverage(height, width)
        assert weight.shape == (height, width)
        assert weight.min() > 0


def test_tile_weights_fall_off_towards_the_edges() -> None:
    weights = tile_weights()
    assert weights.shape == TILE and weights.dtype == np.float32
    assert weights.min() == 1 and weights[0, 0] == weights[-1, -1] == weights[0, -1] == 1
    assert weights.max() == TILE[0] // 2 == weights[TILE[0] // 2, TILE[1] // 2]
    np.testing.assert_array_equal(weights, weights[::-1, ::-1])
    middle = weights[TILE[0] // 2]
    assert (np.diff(middle[: TILE[1] // 2]) >= 0).all() and (np.diff(middle[TILE[1] // 2 :]) <= 0).all()


def _centre_pixel(tiles: np.ndarray) -> np.ndarray:
    """A fake model: the 'flow' of each tile is the red and green of frame 1 at each pixel."""
    return tiles[:, 0, :, :, :2].copy()


@pytest.mark.parametrize(
    ("height", "width"),
    [(1, 1), (17, 16), (100, 151), (368, 496), (369, 497), (701, 400), (735, 971), (1080, 1920)],
)
def test_tiled_flow_puts_every_tile_back_in_place(height: int, width: int) -> None:
    rng = np.random.default_rng(height * width)
    frame1 = rng.uniform(-1, 1, (height, width, 3)).astype(np.float32)
    frame2 = rng.uniform(-1, 1, (height, width, 3)).astype(np.float32)
    calls: list[int] = []

    def forward(tiles: np.ndarray) -> np.ndarray:
        assert tiles.shape[1:] == (2, *TILE, 3)
        calls.append(len(tiles))
        return _centre_pixel(tiles)

    flow, tiles = tiled_flow(frame1, frame2, forward, batch_size=3)
    assert flow.shape == (height, width, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(flow, frame1[..., :2], atol=1e-5)
    assert tiles == len(tile_grid(*padded_size(height, width))) == sum(calls)
    assert all(n <= 3 for n in calls) and len(calls) == math.ceil(tiles / 3)


def test_image_patches_order_matches_tensorflow_extract_patches() -> None:
    frames = torch.randn(2, 2, 3, 5, 7)
    patches = image_patches(frames)
    assert patches.shape == (2, 2, 27, 5, 7)
    padded = torch.nn.functional.pad(frames, (1, 1, 1, 1))
    for ky, kx, c in itertools.product(range(3), range(3), range(3)):
        expected = padded[:, :, c, ky : ky + 5, kx : kx + 7]
        torch.testing.assert_close(patches[:, :, (ky * 3 + kx) * 3 + c], expected, rtol=0, atol=0)
    assert (patches[:, :, 0, 0, :] == 0).all()  # zero padding above the first row


# --- the tiny Perceiver IO runs the real tiling ---------------------------------------------------


@pytest.fixture(scope="module")
def perceiver() -> object:
    from core.models import get_cache

    loaded, _ = get_cache().get("perceiver-flow")
    return loaded


def test_tiny_perceiver_keeps_the_real_tile_size(perceiver: object) -> None:
    assert tuple(perceiver.model.config.train_size) == TILE
    assert type(perceiver.model).__name__ == "PerceiverForOpticalFlow"
    assert perceiver.processor is None


def test_tiny_perceiver_one_tile_is_the_model_times_twenty(perceiver: object) -> None:
    rng = np.random.default_rng(1)
    frame1 = rng.integers(0, 256, (*TILE, 3), dtype=np.uint8)
    frame2 = np.roll(frame1, 2, axis=1)
    flow, tiles = core_flow.perceiver_flow(frame1, frame2, perceiver)
    assert tiles == 1 and flow.shape == (*TILE, 2)
    frames = torch.from_numpy(np.stack([core_flow.normalise(frame1), core_flow.normalise(frame2)])[None])
    with torch.inference_mode():
        logits = perceiver.model(inputs=image_patches(frames.permute(0, 1, 4, 2, 3))).logits
    np.testing.assert_allclose(flow, logits[0].numpy() * 20, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(45, 61), (373, 496)])
def test_tiny_perceiver_any_size(perceiver: object, height: int, width: int) -> None:
    rng = np.random.default_rng(2)
    frame1 = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    seen: list[float] = []
    flow, tiles = core_flow.perceiver_flow(frame1, frame1[::-1].copy(), perceiver, progress=lambda f, _: seen.append(f))
    assert flow.shape == (height, width, 2) and np.isfinite(flow).all()
    assert tiles == len(tile_grid(*padded_size(height, width)))
    assert seen[-1] == 1.0


# --- OpenCV methods against a known sub-pixel shift -----------------------------------------------


@pytest.fixture(scope="module")
def shifted_photo() -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    gray = cv2.cvtColor(np.asarray(load_image(ASSETS / "chelsea.jpg")), cv2.COLOR_RGB2GRAY)
    photo = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    dx, dy = 1.3, -0.7
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(photo, shift, photo.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return photo, moved, (dx, dy)


def _interior_epe(flow: np.ndarray, truth: np.ndarray, margin: int = 20) -> float:
    error = np.hypot(*(flow - truth)[margin:-margin, margin:-margin].transpose(2, 0, 1))
    return float(error.mean())


@pytest.mark.parametrize(("method", "bound"), [("medium", 0.15), ("fast", 0.2), ("ultrafast", 0.3)])
def test_dis_recovers_a_subpixel_shift(shifted_photo: tuple, method: str, bound: float) -> None:
    photo, moved, (dx, dy) = shifted_photo
    flow = core_flow.dis_flow(photo, moved, method)
    truth = np.broadcast_to(np.float32([dx, dy]), flow.shape)
    epe = _interior_epe(flow, truth)
    assert epe < bound < 0.3 + 1e-9, f"DIS {method}: end-point error {epe:.3f} px"


def test_farneback_recovers_a_subpixel_shift(shifted_photo: tuple) -> None:
    photo, moved, (dx, dy) = shifted_photo
    flow = core_flow.farneback_flow(photo, moved)
    epe = _interior_epe(flow, np.broadcast_to(np.float32([dx, dy]), flow.shape))
    assert epe < 0.25, f"Farneback: end-point error {epe:.3f} px"  # measured 0.17


def test_identical_frames_give_zero_flow(shifted_photo: tuple) -> None:
    photo = shifted_photo[0]
    for preset in core_flow.DIS_PRESETS:
        assert np.abs(core_flow.dis_flow(photo, photo, preset)).max() == 0
    farneback = np.abs(core_flow.farneback_flow(photo, photo))
    assert farneback.mean() < 0.01 and farneback.max() < 0.5


def _load_example_script() -> object:
    spec = importlib.util.spec_from_file_location("make_flow_examples", ASSETS / "make_flow_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_pair_has_the_documented_motion() -> None:
    frame1 = np.asarray(load_image(ASSETS / "flow_frame1.png"))
    frame2 = np.asarray(load_image(ASSETS / "flow_frame2.png"))
    matrix = _load_example_script().pair_transform()
    ys, xs = np.mgrid[0 : frame1.shape[0], 0 : frame1.shape[1]].astype(np.float64)
    truth = np.stack(
        [
            matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs,
            matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys,
        ],
        -1,
    )
    assert _interior_epe(core_flow.dis_flow(frame1, frame2, "medium"), truth) < 1.0  # measured 0.53
    assert _interior_epe(core_flow.farneback_flow(frame1, frame2), truth) < 3.0  # measured 2.46


# --- colour wheel, arrows, error maps -------------------------------------------------------------


def test_color_wheel_has_the_middlebury_layout() -> None:
    wheel = render.flow_color_wheel()
    assert wheel.shape == (55, 3)
    for index, color in render.WHEEL_ANCHORS.items():
        assert tuple(wheel[index]) == color
    np.testing.assert_array_equal(wheel[1], [255, 17, 0])  # floor(255 / 15) into the red-yellow ramp
    np.testing.assert_array_equal(wheel[-1], [255, 0, 43])  # the last step back towards red


def test_known_directions_give_the_standard_colours() -> None:
    count = len(render.flow_color_wheel())
    for index, color in render.WHEEL_ANCHORS.items():
        angle = (2 * index / (count - 1) - 1) * math.pi  # the wheel's position of this anchor
        flow = np.array([[[-math.cos(angle), -math.sin(angle)]]])
        assert tuple(render.flow_to_color(flow, 1.0)[0, 0]) == color, index
    directions = np.array([[[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]]], np.float32)
    right, down, left, up, still = (tuple(c) for c in render.flow_to_color(directions)[0])
    assert right == (255, 0, 0)
    assert down == (255, 230, 0)  # between orange and yellow
    assert left == (0, 209, 255)  # cyan-blue
    assert up == (88, 0, 255)  # violet
    assert still == (255, 255, 255)


def test_saturation_follows_the_magnitude() -> None:
    flow = np.array([[[2.0, 0], [1.0, 0], [4.0, 0], [np.nan, 0]]], np.float32)
    colors = render.flow_to_color(flow, max_magnitude=2.0)[0]
    assert tuple(colors[0]) == (255, 0, 0)
    assert tuple(colors[1]) == (255, 128, 128)  # half way to white
    assert tuple(colors[2]) == (191, 0, 0)  # beyond the maximum: darkened to 75 %
    assert tuple(colors[3]) == (255, 255, 255)
    with pytest.raises(ValueError, match="max_magnitude"):
        render.flow_to_color(flow, 0.0)
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        render.flow_to_color(np.zeros((4, 4, 3)))


def test_legend_wheel_and_panel() -> None:
    wheel = render.flow_legend_wheel(65)
    assert wheel.shape == (65, 65, 3)
    assert tuple(wheel[32, 32]) == (255, 255, 255)  # the centre is no motion
    assert tuple(wheel[32, 64]) == (255, 0, 0)  # right rim
    assert tuple(wheel[0, 0]) == (255, 255, 255)  # outside the disk
    image = render.add_flow_legend(np.zeros((200, 300, 3), np.uint8), 3.5)
    assert image.shape[0] == 200 and image.shape[1] > 300
    assert (image[:, :300] == 0).all()


def test_arrows_are_drawn_and_scaled() -> None:
    image = np.full((64, 64, 3), 128, np.uint8)
    flow = np.zeros((64, 64, 2), np.float32)
    flow[..., 0] = 2.0
    arrows, scale = render.draw_flow_arrows(image, flow, stride=16)
    assert scale == pytest.approx(0.9 * 16 / 2.0)
    assert arrows.shape == image.shape and (arrows != arrows[0, 0]).any()
    still, zero_scale = render.draw_flow_arrows(image, np.zeros_like(flow), stride=16)
    assert zero_scale == 0 and (still == still[0, 0]).all()


def test_error_map_colours() -> None:
    error = np.array([[0.0, 10.0], [5.0, 100.0]], np.float32)
    valid = np.array([[True, True], [True, False]])
    colored = render.error_to_color(error, valid, vmax=10.0)
    assert tuple(colored[1, 1]) == (128, 128, 128)
    assert colored[0, 1].sum() > colored[1, 0].sum() > colored[0, 0].sum()


# --- warping and files ----------------------------------------------------------------------------


def test_warp_back_undoes_a_known_shift() -> None:
    rng = np.random.default_rng(3)
    frame1 = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    frame2 = np.roll(frame1, (2, 3), axis=(0, 1))  # content moves by dx=3, dy=2
    flow = np.broadcast_to(np.float32([3, 2]), (40, 50, 2)).copy()
    warped, valid = core_flow.warp_back(frame2, flow)
    np.testing.assert_array_equal(warped[:-2, :-3], frame1[:-2, :-3])
    assert valid[:-2, :-3].all() and not valid[-1, -1]
    assert core_flow.photometric_error(frame1, warped)[:-2, :-3].max() == 0


def test_flo_round_trip(tmp_path: Path) -> None:
    flow = np.random.default_rng(4).normal(size=(7, 11, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    data = (tmp_path / "a.flo").read_bytes()
    assert data[:4] == b"PIEH" and np.frombuffer(data[4:12], "<i4").tolist() == [11, 7]
    assert len(data) == 12 + flow.nbytes
    back = read_flo(tmp_path / "a.flo")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, flow)
    (tmp_path / "bad.flo").write_bytes(b"nope" + data[4:])
    with pytest.raises(ValueError, match="magic"):
        read_flo(tmp_path / "bad.flo")
    (tmp_path / "short.flo").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated"):
        read_flo(tmp_path / "short.flo")


# --- requests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_pair() -> tuple[Image.Image, Image.Image]:
    return load_image(ASSETS / "flow_frame1.png"), load_image(ASSETS / "flow_frame2.png")


def test_compare_flow_classical(example_pair: tuple[Image.Image, Image.Image], tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []
    result = core_flow.compare_flow(
        *example_pair, ["dis", "farneback"], dis_preset="fast", arrow_stride=20, out_dir=tmp_path,
        progress=lambda f, m: seen.append((f, m)),
    )  # fmt: skip
    data = result.to_dict()
    assert list(data["methods"]) == ["dis", "farneback"]
    assert data["methods"]["dis"]["name"] == "DIS (fast)"
    assert data["size"] == {"width": 384, "height": 288}
    for stats in data["methods"].values():
        assert 3 < stats["mean_magnitude"] < 12 and stats["max_magnitude"] < 20
        assert stats["mean_photometric_error"] < data["photometric_error_without_flow"] / 2
    assert len(result.gallery) == len(data["images"]) == 8
    flow_image = result.gallery[0][0]
    assert flow_image.shape[0] == 288 and flow_image.shape[1] > 384
    assert all(img.shape == (288, 384, 3) for img, _ in result.gallery[1:4])
    assert data["files"] == ["dis-fast.flo", "dis-fast.npy", "farneback.flo", "farneback.npy"]
    np.testing.assert_array_equal(read_flo(tmp_path / "dis-fast.flo"), np.load(tmp_path / "dis-fast.npy"))
    np.testing.assert_array_equal(read_flo(tmp_path / "dis-fast.flo"), result.methods[0].flow)
    assert seen[0][0] == 0 and seen[-1][0] == 1.0
    assert "DIS (fast)" in data["summary"]


def test_compare_flow_refuses_bad_requests(example_pair: tuple[Image.Image, Image.Image]) -> None:
    first, second = example_pair
    with pytest.raises(InputError, match=r"same size: frame 1 is 384×288, frame 2 is 383×288"):
        core_flow.compare_flow(first, second.crop((0, 0, 383, 288)), ["dis"])
    with pytest.raises(InputError, match="at least one flow method"):
        core_flow.compare_flow(first, second, [])
    with pytest.raises(InputError, match="Unknown flow method 'raft'"):
        core_flow.compare_flow(first, second, ["raft"])
    with pytest.raises(InputError, match="Unknown DIS preset"):
        core_flow.compare_flow(first, second, ["dis"], dis_preset="slow")
    with pytest.raises(InputError, match="Arrow spacing must be from 4 to 64"):
        core_flow.compare_flow(first, second, ["dis"], arrow_stride=2)
    tiny = Image.new("RGB", (10, 40))
    with pytest.raises(InputError, match="at least 16×16"):
        core_flow.compare_flow(tiny, tiny, ["dis"])


def test_flow_pixel_limit(fresh_settings: pytest.MonkeyPatch, example_pair: tuple[Image.Image, Image.Image]) -> None:
    fresh_settings.setenv("PLAYGROUND_FLOW_MAX_PIXELS", "10000")
    with pytest.raises(InputError, match=r"384×288 \(0.111 megapixels\); flow is limited to 0.01 megapixels"):
        core_flow.compare_flow(*example_pair, ["dis"])


# --- video ----------------------------------------------------------------------------------------


def test_read_the_example_clip() -> None:
    clip = read_video(ASSETS / "flow_pan.mp4", max_frames=100, max_seconds=10, max_pixels=10**6)
    assert len(clip.frames) == 16 and clip.fps == 8 and clip.original_size == (320, 240)
    assert clip.frames[0].shape == (240, 320, 3) and clip.frames[0].dtype == np.uint8
    smaller = read_video(ASSETS / "flow_pan.mp4", max_frames=100, max_seconds=10, max_pixels=160 * 120)
    assert smaller.frames[0].shape == (120, 160, 3) and smaller.original_size == (320, 240)


def test_video_limits_and_bad_files(tmp_path: Path) -> None:
    limits = {"max_frames": 100, "max_seconds": 10.0, "max_pixels": 10**6}
    with pytest.raises(InputError, match="16 frames; the limit is 10"):
        read_video(ASSETS / "flow_pan.mp4", **{**limits, "max_frames": 10})
    with pytest.raises(InputError, match="2.0 s long; the limit is 1.5 s"):
        read_video(ASSETS / "flow_pan.mp4", **{**limits, "max_seconds": 1.5})
    text = tmp_path / "clip.mp4"
    text.write_text("not a video at all")
    with pytest.raises(InputError, match="not a video in a supported format"):
        read_video(text, **limits)
    playlist = tmp_path / "list.mp4"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(InputError, match="not a video in a supported format"):
        read_video(playlist, **limits)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_video(tmp_path / "empty.mp4", **limits)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((ASSETS / "flow_pan.mp4").read_bytes()[:600])
    with pytest.raises(InputError, match="corrupted"):
        read_video(cut, **limits)
    with pytest.raises(InputError, match="No video"):
        read_video(None, **limits)
    assert sniff_container((ASSETS / "flow_pan.mp4").read_bytes()[:16]) == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + bytes(12)) == "matroska"


def test_write_mp4_is_h264(tmp_path: Path) -> None:
    frames = [np.full((33, 47, 3), i * 20, np.uint8) for i in range(5)]
    path = write_mp4(tmp_path / "out.mp4", frames, 5.0)
    capture = cv2.VideoCapture(str(path))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    assert fourcc in ("avc1", "h264")
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 34)
    capture.release()


def test_video_flow_of_the_example_pan(tmp_path: Path) -> None:
    seen: list[float] = []
    result = core_flow.video_flow(
        ASSETS / "flow_pan.mp4", "dis", dis_preset="medium", frame_step=1, out_dir=tmp_path,
        progress=lambda f, _: seen.append(f),
    )  # fmt: skip
    info = result.info
    assert result.video.parent == tmp_path and result.video.suffix == ".mp4"
    assert info["frames"] == 16 and info["pairs"] == 15 and info["fps"] == 8
    truth = math.hypot(4.5, 1.5)  # the pan moves (4.5, 1.5) px per frame
    assert all(abs(m - truth) < 0.3 for m in info["mean_magnitude_per_pair"])
    capture = cv2.VideoCapture(str(result.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 15
    assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) > 2 * 320
    capture.release()
    assert seen == sorted(seen) and seen[-1] == 1.0
    stepped = core_flow.video_flow(ASSETS / "flow_pan.mp4", "farneback", frame_step=5, out_dir=tmp_path)
    assert stepped.info["pairs"] == 3 and stepped.info["output_fps"] == pytest.approx(1.6)
    short = write_mp4(tmp_path / "short.mp4", [np.full((32, 32, 3), i * 60, np.uint8) for i in range(3)], 8.0)
    with pytest.raises(InputError, match="has 3 frames: too few for a frame step of 5"):
        core_flow.video_flow(short, "dis", frame_step=5, out_dir=tmp_path)


def test_video_limits_come_from_the_settings(fresh_settings: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fresh_settings.setenv("PLAYGROUND_FLOW_VIDEO_MAX_FRAMES", "10")
    with pytest.raises(InputError, match="16 frames; the limit is 10"):
        core_flow.video_flow(ASSETS / "flow_pan.mp4", "dis", out_dir=tmp_path)
    fresh_settings.setenv("PLAYGROUND_FLOW_VIDEO_MAX_FRAMES", "100")
    fresh_settings.setenv("PLAYGROUND_FLOW_VIDEO_MAX_SECONDS", "1")
    reset_settings()
    with pytest.raises(InputError, match="2.0 s long; the limit is 1 s"):
        core_flow.video_flow(ASSETS / "flow_pan.mp4", "dis", out_dir=tmp_path)
    fresh_settings.setenv("PLAYGROUND_FLOW_VIDEO_MAX_SECONDS", "10")
    fresh_settings.setenv("PLAYGROUND_FLOW_VIDEO_MAX_PIXELS", str(160 * 120))
    reset_settings()
    info = core_flow.video_flow(ASSETS / "flow_pan.mp4", "dis", out_dir=tmp_path).info
    assert info["size"] == {"width": 160, "height": 120}
    assert info["original_size"] == {"width": 320, "height": 240}
    with pytest.raises(InputError, match="Choose one flow method"):
        core_flow.video_flow(ASSETS / "flow_pan.mp4", ["dis", "farneback"], out_dir=tmp_path)


def test_tile_batch_is_one_on_cpu_four_on_cuda_unless_configured(fresh_settings: pytest.MonkeyPatch) -> None:
    assert core_flow.tile_batch(torch.device("cpu")) == 1
    assert core_flow.tile_batch(torch.device("cuda")) == core_flow.DEFAULT_CUDA_TILE_BATCH == 4
    fresh_settings.setenv("PLAYGROUND_FLOW_TILE_BATCH", "2")
    reset_settings()
    assert core_flow.tile_batch(torch.device("cpu")) == core_flow.tile_batch(torch.device("cuda")) == 2
