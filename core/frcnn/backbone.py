"""The ResNet "C4" backbone: stem and res2..res4 (stride 16), and the stages res5 reuses.

Module names follow the demo's port (`<name>.weight`, `<name>.norm.*`) so the checkpoint loads by name.
Feature maps are (1, channels, H / 16, W / 16) for a (1, 3, H, W) input.
"""

from __future__ import annotations

from typing import Any

from core.frcnn.config import FrcnnConfig
from core.lazy import F, torch

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
"""Bottleneck blocks in res2..res5 for each ResNet depth."""


class ConvNorm(torch.nn.Conv2d):
    """A bias-free convolution followed by batch norm (`<name>.weight`, `<name>.norm.*`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=False, **kwargs)
        self.norm = torch.nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class Bottleneck(torch.nn.Module):
    """1 x 1 -> 3 x 3 -> 1 x 1 with a projection shortcut when the channels change."""

    def __init__(
        self, in_channels: int, out_channels: int, bottleneck: int, stride: int, stride_in_1x1: bool, dilation: int = 1
    ) -> None:
        super().__init__()
        self.shortcut = ConvNorm(in_channels, out_channels, 1, stride=stride) if in_channels != out_channels else None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNorm(in_channels, bottleneck, 1, stride=stride_1x1)
        self.conv2 = ConvNorm(bottleneck, bottleneck, 3, stride=stride_3x3, padding=dilation, dilation=dilation)
        self.conv3 = ConvNorm(bottleneck, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))
        out = F.relu(self.conv2(out))
        out = self.conv3(out)
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else x))


def stage(
    blocks: int, in_channels: int, out_channels: int, bottleneck: int, first_stride: int, stride_in_1x1: bool
) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        *(
            Bottleneck(
                in_channels if i == 0 else out_channels,
                out_channels,
                bottleneck,
                first_stride if i == 0 else 1,
                stride_in_1x1,
            )
            for i in range(blocks)
        )
    )


class Stem(torch.nn.Module):
    """7 x 7 stride-2 convolution and 3 x 3 stride-2 max pooling (Caffe's: no padding, rounding up)."""

    def __init__(self, out_channels: int, caffe_maxpool: bool) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, out_channels, 7, stride=2, padding=3)
        self.caffe_maxpool = caffe_maxpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        if self.caffe_maxpool:
            return F.max_pool2d(x, kernel_size=3, stride=2, padding=0, ceil_mode=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class Backbone(torch.nn.Module):
    """ResNet stem and res2..res4 (stride 16)."""

    def __init__(self, config: FrcnnConfig) -> None:
        super().__init__()
        resnet = config["RESNETS"]
        if str(resnet["NORM"]).upper() != "BN":
            raise ValueError(f"RESNETS.NORM {resnet['NORM']!r} is not supported (only BN)")
        if int(resnet["NUM_GROUPS"]) != 1:
            raise ValueError("RESNETS.NUM_GROUPS other than 1 is not supported")
        self.stem = Stem(int(resnet["STEM_OUT_CHANNELS"]), bool(config["MODEL"].get("MAX_POOL", False)))
        counts = BLOCKS_PER_STAGE[int(resnet["DEPTH"])]
        in_channels = int(resnet["STEM_OUT_CHANNELS"])
        out_channels = int(resnet["RES2_OUT_CHANNELS"])
        bottleneck = int(resnet["NUM_GROUPS"]) * int(resnet["WIDTH_PER_GROUP"])
        stride_in_1x1 = bool(resnet["STRIDE_IN_1X1"])
        for index, name in enumerate(("res2", "res3", "res4")):
            layers = stage(counts[index], in_channels, out_channels, bottleneck, 1 if index == 0 else 2, stride_in_1x1)
            self.add_module(name, layers)
            in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res4(self.res3(self.res2(self.stem(x))))
