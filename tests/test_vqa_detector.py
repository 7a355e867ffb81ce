"""The Visual Genome Faster R-CNN in plain torch: its geometry against the definitions on hand-made
inputs (anchors, box decoding, clipping, NMS, RoI pooling), its preprocessing constants, and its weight
names and shapes against a state dict built from the published architecture."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import boxes as ops
from core.frcnn import FrcnnConfig, VisualGenomeFasterRCNN, preprocess, resized_size
from core.tiny.vqa import FRCNN_CONFIG, frcnn_config, tiny_frcnn

# --- anchors ---------------------------------------------------------------------------------------


def test_cell_anchors_have_the_size_squared_as_area_and_the_ratio_as_height_over_width() -> None:
    anchors = ops.cell_anchors([64, 128, 256, 512], [0.5, 1.0, 2.0])
    assert anchors.shape == (12, 4)
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    expected_areas = torch.tensor([s * s for s in (64, 128, 256, 512) for _ in range(3)], dtype=torch.float32)
    torch.testing.assert_close(widths * heights, expected_areas)
    torch.testing.assert_close(heights / widths, torch.tensor([0.5, 1.0, 2.0] * 4))
    torch.testing.assert_close(anchors[:, :2], -anchors[:, 2:])  # centred on (0, 0)
    w = math.sqrt(64 * 64 / 0.5)
    torch.testing.assert_close(anchors[0], torch.tensor([-w / 2, -w / 4, w / 2, w / 4]))
    torch.testing.assert_close(anchors[4], torch.tensor([-64.0, -64.0, 64.0, 64.0]))


def test_grid_anchors_are_cell_major_with_the_anchors_of_a_cell_together() -> None:
    base = ops.cell_anchors([32], [0.5, 1.0, 2.0])
    grid = ops.grid_anchors(base, (2, 3), stride=16)
    assert grid.shape == (2 * 3 * 3, 4)
    for row in range(2):
        for column in range(3):
            for a in range(3):
                shift = torch.tensor([16.0 * column, 16.0 * row] * 2)
                torch.testing.assert_close(grid[(row * 3 + column) * 3 + a], base[a] + shift)
    shifted = ops.grid_anchors(base, (1, 1), stride=16, offset=0.5)
    torch.testing.assert_close(shifted, base + 8.0)


# --- box decoding and clipping ---------------------------------------------------------------------


def deltas_between(source: torch.Tensor, target: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
    """The definition: the deltas that turn `source` boxes into `target` boxes."""
    sw, sh = source[:, 2] - source[:, 0], source[:, 3] - source[:, 1]
    tw, th = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    wx, wy, ww, wh = weights
    dx = wx * ((target[:, 0] + tw / 2) - (source[:, 0] + sw / 2)) / sw
    dy = wy * ((target[:, 1] + th / 2) - (source[:, 1] + sh / 2)) / sh
    return torch.stack((dx, dy, ww * torch.log(tw / sw), wh * torch.log(th / sh)), dim=1)


def test_apply_deltas_by_hand_and_as_the_inverse_of_the_definition() -> None:
    box = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # 20 wide, 40 high, centre (20, 40)
    torch.testing.assert_close(ops.apply_deltas(torch.zeros(1, 4), box, (1, 1, 1, 1)), box)
    moved = ops.apply_deltas(torch.tensor([[10.0, -5.0, 0.0, 0.0]]), box, (10, 10, 5, 5))
    torch.testing.assert_close(moved, torch.tensor([[30.0, 0.0, 50.0, 40.0]]))  # +1 width, -0.5 height
    grown = ops.apply_deltas(torch.tensor([[0.0, 0.0, math.log(2), math.log(0.5)]]), box, (1, 1, 1, 1))
    torch.testing.assert_close(grown, torch.tensor([[0.0, 30.0, 40.0, 50.0]]))
    clamped = ops.apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 0.0]]), box, (1, 1, 1, 1))
    assert float(clamped[0, 2] - clamped[0, 0]) == pytest.approx(20 * 1000 / 16, rel=1e-5)
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(50, 2, generator=generator) * 100
    source = torch.cat([source, source + 1 + torch.rand(50, 2, generator=generator) * 50], dim=1)
    target = torch.rand(50, 2, generator=generator) * 100
    target = torch.cat([target, target + 1 + torch.rand(50, 2, generator=generator) * 50], dim=1)
    weights = (10.0, 10.0, 5.0, 5.0)
    torch.testing.assert_close(ops.apply_deltas(deltas_between(source, target, weights), source, weights), target)


def test_class_specific_deltas_decode_each_class_box() -> None:
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])  # class 0 stays, class 1 moves by 10
    torch.testing.assert_close(
        ops.apply_deltas(deltas, box, (1, 1, 1, 1)), torch.tensor([[0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 20.0, 20.0]])
    )


def test_clip_boxes_to_the_image_and_drop_empty_ones() -> None:
    boxes = torch.tensor([[-5.0, -3.0, 50.0, 40.0], [10.0, 10.0, 700.0, 20.0], [650.0, 500.0, 900.0, 900.0]])
    clipped = ops.clip_boxes(boxes, (480, 640))
    torch.testing.assert_close(
        clipped, torch.tensor([[0.0, 0.0, 50.0, 40.0], [10.0, 10.0, 640.0, 20.0], [640.0, 480.0, 640.0, 480.0]])
    )
    assert ops.nonempty(clipped).tolist() == [True, True, False]
    assert ops.nonempty(clipped, threshold=15).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="infinite or NaN"):
        ops.clip_boxes(torch.tensor([[0.0, float("nan"), 1.0, 1.0]]), (10, 10))


# --- non-maximum suppression -----------------------------------------------------------------------


def greedy_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """The definition, in plain Python: by decreasing score (ties in input order), keep a box unless a
    kept box overlaps it with IoU above the threshold."""

    def iou(a: list[float], b: list[float]) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def test_nms_on_hand_made_boxes_keeps_by_score_and_drops_overlaps() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # A
            [1.0, 0.0, 11.0, 10.0],  # B: IoU with A = 90 / 110
            [20.0, 20.0, 30.0, 30.0],  # C: apart
            [0.0, 0.0, 10.0, 5.0],  # D: inside A, IoU 0.5
        ]
    )
    scores = torch.tensor([0.8, 0.9, 0.7, 0.95])
    assert ops.nms(boxes, scores, 0.5).tolist() == [3, 1, 2]  # D, then B (IoU with D 45/105), not A
    assert ops.nms(boxes, scores, 0.9).tolist() == [3, 1, 0, 2]
    assert ops.nms(boxes, scores, 0.5, max_keep=2).tolist() == [3, 1]
    equal = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert ops.nms(boxes, equal, 0.95).tolist() == [0, 1, 2, 3]  # ties keep the input order
    assert ops.nms(boxes[:0], scores[:0], 0.5).tolist() == []
    iou = float(ops.box_iou(boxes[:1], boxes[3:4])[0, 0])
    assert iou == 0.5
    assert ops.nms(boxes[[0, 3]], torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]  # exactly the threshold: kept


def test_nms_equals_the_definition_on_random_boxes() -> None:
    rng = random.Random(7)
    for threshold in (0.3, 0.5, 0.7):
        raw = []
        for _ in range(120):
            x, y = rng.uniform(0, 200), rng.uniform(0, 200)
            raw.append([x, y, x + rng.uniform(5, 80), y + rng.uniform(5, 80)])
        scores = [rng.random() for _ in raw]
        ours = ops.nms(torch.tensor(raw, dtype=torch.float64), torch.tensor(scores, dtype=torch.float64), threshold)
        assert ours.tolist() == greedy_nms(raw, scores, threshold)


# --- RoI pooling -----------------------------------------------------------------------------------


def roi_pool_definition(features: torch.Tensor, roi: list[float], size: tuple[int, int], scale: float) -> torch.Tensor:
    """torchvision's RoIPool, element by element (C's round: half away from zero)."""
    _, channels, height, width = features.shape
    batch, x0, y0, x1, y1 = roi

    def c_round(v: float) -> int:
        return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)

    start_w, start_h, end_w, end_h = (c_round(v * scale) for v in (x0, y0, x1, y1))
    roi_w, roi_h = max(end_w - start_w + 1, 1), max(end_h - start_h + 1, 1)
    bin_h = torch.tensor(roi_h, dtype=torch.float32) / size[0]
    bin_w = torch.tensor(roi_w, dtype=torch.float32) / size[1]
    out = torch.zeros(channels, *size)
    for ph in range(size[0]):
        for pw in range(size[1]):
            hs = min(max(int(torch.floor(ph * bin_h)) + start_h, 0), height)
            he = min(max(int(torch.ceil((ph + 1) * bin_h)) + start_h, 0), height)
            ws = min(max(int(torch.floor(pw * bin_w)) + start_w, 0), width)
            we = min(max(int(torch.ceil((pw + 1) * bin_w)) + start_w, 0), width)
            if he > hs and we > ws:
                out[:, ph, pw] = features[int(batch), :, hs:he, ws:we].amax(dim=(1, 2))
    return out


def test_roi_pool_by_hand() -> None:
    features = torch.arange(16.0).view(1, 1, 4, 4)  # value = 4 * row + column
    whole = ops.roi_pool(features, torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]]), (2, 2), 1.0)
    torch.testing.assert_close(whole[0, 0], torch.tensor([[5.0, 7.0], [13.0, 15.0]]))
    one_cell = ops.roi_pool(features, torch.tensor([[0.0, 16.0, 16.0, 16.0, 16.0]]), (1, 1), 1 / 16)
    assert float(one_cell) == 5.0  # pixel 16 is cell (1, 1) at 1/16
    outside = ops.roi_pool(features, torch.tensor([[0.0, 10.0, 10.0, 12.0, 12.0]]), (2, 2), 1.0)
    assert outside.abs().sum() == 0  # beyond the map: zeros
    half_out = ops.roi_pool(features, torch.tensor([[0.0, 2.0, 2.0, 5.0, 5.0]]), (2, 2), 1.0)
    torch.testing.assert_close(half_out[0, 0], torch.tensor([[15.0, 0.0], [0.0, 0.0]]))


def test_roi_pool_equals_the_definition_on_hand_made_regions() -> None:
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 3, 9, 13, generator=generator)
    rois = [
        [0, 0.0, 0.0, 207.0, 143.0],  # the whole map at 1/16
        [1, 17.3, 8.0, 64.9, 40.2],
        [0, 40.0, 40.0, 40.0, 40.0],  # one pixel
        [1, 150.0, 100.0, 260.0, 190.0],  # runs off the map
        [0, 7.9, 7.9, 8.1, 200.0],  # thin
        [1, 0.0, 0.0, 23.0, 230.0],
        [0, 120.5, 3.2, 199.4, 55.5],
    ]
    for size in ((14, 14), (3, 5), (1, 1)):
        ours = ops.roi_pool(features, torch.tensor(rois), size, 1 / 16)
        for index, roi in enumerate(rois):
            torch.testing.assert_close(ours[index], roi_pool_definition(features, roi, size, 1 / 16), rtol=0, atol=0)


# --- preprocessing ---------------------------------------------------------------------------------


def test_preprocessing_constants_are_caffes() -> None:
    config = FrcnnConfig(FRCNN_CONFIG)
    assert config.get_path("MODEL.PIXEL_MEAN") == [102.9801, 115.9465, 122.7717]  # B, G, R
    assert config.get_path("MODEL.PIXEL_STD") == [1.0, 1.0, 1.0]
    assert config.get_path("INPUT.FORMAT") == "BGR"
    assert (config.get_path("INPUT.MIN_SIZE_TEST"), config.get_path("INPUT.MAX_SIZE_TEST")) == (800, 1333)
    assert config.get_path("max_detections") == config["MAX_DETECTIONS"] == 36  # keys in any case
    tiny_config, _ = tiny_frcnn()
    for path in ("MODEL.PIXEL_MEAN", "MODEL.PIXEL_STD", "INPUT.FORMAT", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST"):
        assert tiny_config.get_path(path) == config.get_path(path)


def test_resize_rule() -> None:
    assert resized_size(400, 600, 800, 1333) == (800, 1200)
    assert resized_size(300, 451, 800, 1333) == (800, 1203)  # 1202.67 rounded half up
    assert resized_size(1000, 100, 800, 1333) == (1333, 133)  # the longer side capped
    assert resized_size(2000, 3000, 800, 1333) == (800, 1200)
    assert resized_size(1, 1000, 800, 1333) == (1, 1333)


def test_preprocess_is_bgr_minus_the_means_resized_and_padded() -> None:
    config = FrcnnConfig(FRCNN_CONFIG)
    photo = Image.new("RGB", (6, 4), (200, 100, 50))
    inputs = preprocess(photo, config)
    assert inputs.size == (800, 1200) and inputs.pixel_values.shape == (1, 3, 800, 1200)
    assert inputs.scale == (4 / 800, 6 / 1200)
    expected = torch.tensor([50 - 102.9801, 100 - 115.9465, 200 - 122.7717])
    torch.testing.assert_close(inputs.pixel_values[0, :, 400, 600], expected)
    thin = preprocess(Image.new("RGB", (1000, 1), (0, 0, 0)), config)
    assert thin.size == (1, 1333) and thin.pixel_values.shape == (1, 3, 64, 1333)
    assert float(thin.pixel_values[0, 0, 10, 10]) == 0.0  # padding: the mean colour
    gradient = Image.fromarray(
        (torch.arange(8 * 8 * 3) % 256).to(torch.uint8).view(8, 8, 3).numpy(), mode="RGB"
    ).resize((800, 800), Image.Resampling.NEAREST)
    unchanged = preprocess(gradient, config)  # already 800 px: not resampled
    raw = torch.from_numpy(np.asarray(gradient, dtype="float32")).permute(2, 0, 1).flip(0)
    torch.testing.assert_close(
        unchanged.pixel_values[0], raw - torch.tensor(FRCNN_CONFIG["MODEL"]["PIXEL_MEAN"]).view(3, 1, 1)
    )


# --- weights ---------------------------------------------------------------------------------------


def published_architecture() -> dict[str, tuple[int, ...]]:
    """Every weight of the Visual Genome ResNet-101 C4 Faster R-CNN, written from its published
    description (py-bottom-up-attention's VG-Detection/faster_rcnn_R_101_C4_attr_caffemaxpool.yaml on
    detectron2's defaults, as transformers' demo builds it): batch norms with running statistics,
    blocks [3, 4, 23] in res2..res4 and 3 in res5, an RPN with 512 hidden channels and 4 x 3 anchors,
    1600 (+1) classes, 400 (+1) attributes, a class embedding of 2048 / 8."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int) -> None:
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.norm.{stat}"] = (cout,)
        shapes[f"{name}.norm.num_batches_tracked"] = ()

    def stage(prefix: str, blocks: int, cin: int, bottleneck: int, cout: int) -> None:
        for b in range(blocks):
            if b == 0:
                conv(f"{prefix}.{b}.shortcut", cin, cout, 1)
            conv(f"{prefix}.{b}.conv1", cin if b == 0 else cout, bottleneck, 1)
            conv(f"{prefix}.{b}.conv2", bottleneck, bottleneck, 3)
            conv(f"{prefix}.{b}.conv3", bottleneck, cout, 1)

    conv("backbone.stem.conv1", 3, 64, 7)
    stage("backbone.res2", 3, 64, 64, 256)
    stage("backbone.res3", 4, 256, 128, 512)
    stage("backbone.res4", 23, 512, 256, 1024)
    shapes["proposal_generator.anchor_generator.cell_anchors.0"] = (12, 4)
    for name, cin, cout, k in (
        ("conv", 1024, 512, 3),
        ("objectness_logits", 512, 12, 1),
        ("anchor_deltas", 512, 48, 1),
    ):
        shapes[f"proposal_generator.rpn_head.{name}.weight"] = (cout, cin, k, k)
        shapes[f"proposal_generator.rpn_head.{name}.bias"] = (cout,)
    stage("roi_heads.res5", 3, 1024, 512, 2048)
    for name, cin, cout in (
        ("cls_score", 2048, 1601),
        ("bbox_pred", 2048, 6400),
        ("fc_attr", 2304, 512),
        ("attr_score", 512, 401),
    ):
        shapes[f"roi_heads.box_predictor.{name}.weight"] = (cout, cin)
        shapes[f"roi_heads.box_predictor.{name}.bias"] = (cout,)
    shapes["roi_heads.box_predictor.cls_embedding.weight"] = (1601, 256)
    return shapes


def test_every_weight_name_and_shape_is_the_published_architectures() -> None:
    with torch.device("meta"):
        model = VisualGenomeFasterRCNN(frcnn_config())
    ours = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    expected = published_architecture()
    assert sorted(set(ours) - set(expected)) == [] and sorted(set(expected) - set(ours)) == []
    assert ours == expected
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(65.4, abs=0.05)
    res5 = model.roi_heads.res5
    assert res5[0].conv1.stride == (1, 1) and res5[0].shortcut.stride == (1, 1)  # RES5HALVE false
    assert all(block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2) for block in res5)
    assert model.backbone.res3[0].conv1.stride == (2, 2) and model.backbone.res3[0].conv2.stride == (1, 1)


def test_weights_load_by_name_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    config, _ = tiny_frcnn()
    source = VisualGenomeFasterRCNN(config)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_()
    source.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "pytorch_model.bin"]
    loaded = VisualGenomeFasterRCNN.from_pretrained(tmp_path)
    assert loaded.training is False
    for name, tensor in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    state["backbone.stem.conv1.norm.gamma"] = state.pop("backbone.stem.conv1.norm.weight")  # old name: read
    for name in [n for n in state if n.endswith("num_batches_tracked")]:
        del state[name]  # counters may be absent
    VisualGenomeFasterRCNN(config).load_weights(state)
    broken = dict(state)
    broken["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(3, 3)
    del broken["backbone.res2.0.conv1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError) as caught:
        VisualGenomeFasterRCNN(config).load_weights(broken, "test weights")
    message = str(caught.value)
    assert "missing: backbone.res2.0.conv1.weight" in message
    assert "unexpected: extra.weight" in message
    assert "wrong shape: roi_heads.box_predictor.cls_score.weight" in message
