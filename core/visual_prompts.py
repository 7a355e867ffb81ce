"""Visual prompts drawn onto the RGB image, the way ViP-LLaVA saw them in training.

Shapes, colour names and sizes follow ViP-LLaVA's training renderer
(github.com/WisconsinAIVision/ViP-LLaVA, `llava/visual_prompt_generator.py`): nine named colours,
and line widths and point radii in units of a 336-pixel image, scaled by the longer side of the
image (`int(k * max(width, height) / 336)`, at least 1). Training drew widths at random from a range
per shape (rectangle and ellipse 2-8, arrow 1-6, scribble 2-12, point radius 5-20); here they are
fixed inside every range: 3 for lines (the width of the renderer's "constant" style) and 8 for
points. Marks are opaque (training used alpha 96-255) so that they render exactly.

Free-hand brush strokes arrive as RGBA layers painted in a browser. Every pixel that is at least
half opaque counts as painted and takes the nearest of the nine named colours, so anti-aliased edges
never bring a colour the model has not seen; fainter pixels are left as the photo has them.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from core import checks
from core.errors import InputError
from core.settings import get_settings

SIZE_ANCHOR = 336
LINE_UNITS = 3
POINT_UNITS = 8
ARROW_HEAD_UNITS = 6
MAX_SHAPES = 20
MAX_SCRIBBLE_POINTS = 500
MIN_BRUSH_ALPHA = 128
"""Layer pixels at least this opaque (of 255) are painted; fainter ones (anti-aliased fringes) are not."""
MAX_BRUSH_LAYERS = 8

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "fuchsia": (255, 0, 255),
    "aqua": (0, 255, 255),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
    "gold": (255, 215, 0),
}
"""ViP-LLaVA's `color_pool`: the colour names its training questions use ("the red rectangle")."""
PALETTE = np.array(list(COLORS.values()), dtype=np.uint8)

POINTS_NEEDED: dict[str, int] = {"rectangle": 2, "ellipse": 2, "arrow": 2, "point": 1, "scribble": 2}
"""How many points each kind takes (a scribble takes at least 2): two opposite corners of a
rectangle or of an ellipse's bounding box, an arrow's tail then its head, a point, a scribble's path."""
KINDS = tuple(POINTS_NEEDED)

PHRASES: dict[str, str] = {
    "rectangle": "within the {color} rectangle",
    "ellipse": "within the {color} ellipse",
    "arrow": "pointed to by the {color} arrow",
    "point": "at the {color} point",
    "scribble": "with the {color} scribble",
}
"""How ViP-LLaVA's training questions refer to each kind of mark (its `words_shape`)."""

Point = tuple[float, float]


@dataclass(frozen=True)
class Shape:
    """One mark: `points` in image pixels, (x, y) with x to the right and y down from the top-left."""

    kind: str
    color: str
    points: tuple[Point, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "color": self.color, "points": [list(p) for p in self.points]}

    def phrase(self) -> str:
        """How to refer to this mark in a question, e.g. "within the red rectangle"."""
        return PHRASES[self.kind].format(color=self.color)


def scale(size: tuple[int, int]) -> float:
    """The renderer's size factor: the image's longer side over 336."""
    return max(size) / SIZE_ANCHOR


def line_width(size: tuple[int, int]) -> int:
    """Line width in pixels for an image of `size` (width, height): 3 at 336 px, 6 at 672, at least 1."""
    return max(int(LINE_UNITS * scale(size)), 1)


def brush_width(size: tuple[int, int]) -> int:
    """Width in pixels of a free-hand brush stroke on an image of `size`: a scribble's line width."""
    return line_width(size)


def point_radius(size: tuple[int, int]) -> int:
    """Radius of a point mark in pixels: 8 at 336 px, at least 1."""
    return max(int(POINT_UNITS * scale(size)), 1)


def arrow_head_size(size: tuple[int, int], length: float) -> float:
    """Length of an arrow head's sides: a third of the arrow, at least 6 and at most 20 units."""
    units = scale(size)
    return min(max(length / 3, ARROW_HEAD_UNITS * units), 20 * units)


def _number(value: Any) -> float:
    if not checks.is_number(value):
        raise InputError("Mark coordinates must be numbers (pixels).")
    return float(value)


def parse_shape(data: Any, size: tuple[int, int]) -> Shape:
    """A Shape from `{"kind", "color", "points": [[x, y], ...]}`, checked against an image of `size`."""
    if isinstance(data, Shape):
        data = data.to_dict()
    if not isinstance(data, dict):
        raise InputError('Each mark must be an object like {"kind": "rectangle", "color": "red", "points": [...]}.')
    kind, color, points = data.get("kind"), data.get("color"), data.get("points")
    kind = checks.choice(kind, "kind of mark", KINDS)
    color = checks.choice(color, "colour", COLORS)
    if not isinstance(points, list | tuple) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in points):
        raise InputError(f"The points of a {kind} must be a list of [x, y] pairs.")
    needed = POINTS_NEEDED[kind]
    if kind == "scribble":
        if not needed <= len(points) <= MAX_SCRIBBLE_POINTS:
            raise InputError(f"A scribble needs from 2 to {MAX_SCRIBBLE_POINTS} points, not {len(points)}.")
    elif len(points) != needed:
        raise InputError(f"A {kind} needs {needed} point{'s' if needed > 1 else ''}, not {len(points)}.")
    width, height = size
    parsed = tuple((_number(x), _number(y)) for x, y in points)
    for x, y in parsed:
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise InputError(f"The point ({x:g}, {y:g}) of a {kind} is outside the {width}×{height} image.")
    if needed == 2 and kind != "scribble" and parsed[0] == parsed[1]:
        raise InputError(f"The two points of a {kind} must be at different places.")
    return Shape(kind, color, parsed)


def parse_shapes(data: Any, size: tuple[int, int]) -> list[Shape]:
    """Shapes from a JSON-like list (None or [] for none); raise InputError for anything unusable."""
    if data is None:
        return []
    if not isinstance(data, list | tuple):
        raise InputError("The marks must be a list of shapes.")
    if len(data) > MAX_SHAPES:
        raise InputError(f"Draw at most {MAX_SHAPES} marks, not {len(data)}.")
    return [parse_shape(item, size) for item in data]


def _box(points: Sequence[Point]) -> tuple[float, float, float, float]:
    (x0, y0), (x1, y1) = points
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _draw_arrow(draw: ImageDraw.ImageDraw, shape: Shape, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    (tail_x, tail_y), (head_x, head_y) = shape.points
    angle = math.atan2(tail_y - head_y, tail_x - head_x)  # from the head back towards the tail
    head = arrow_head_size(size, math.hypot(tail_x - head_x, tail_y - head_y))
    draw.line([(tail_x, tail_y), (head_x, head_y)], fill=color, width=line_width(size))
    turns = (angle + math.pi / 3, angle - math.pi / 3)
    wings = [(head_x + head * math.cos(turn), head_y + head * math.sin(turn)) for turn in turns]
    draw.polygon([wings[0], (head_x, head_y), wings[1]], fill=color)


def _draw_one(draw: ImageDraw.ImageDraw, shape: Shape, size: tuple[int, int]) -> None:
    color = COLORS[shape.color]
    width = line_width(size)
    if shape.kind == "rectangle":
        draw.rectangle(_box(shape.points), outline=color, width=width)
    elif shape.kind == "ellipse":
        draw.ellipse(_box(shape.points), outline=color, width=width)
    elif shape.kind == "arrow":
        _draw_arrow(draw, shape, size, color)
    elif shape.kind == "point":
        (x, y), radius = shape.points[0], point_radius(size)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
    else:
        draw.line(list(shape.points), fill=color, width=width, joint="curve")
        for x, y in (shape.points[0], shape.points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=color)


def draw(image: Image.Image, shapes: Sequence[Shape]) -> Image.Image:
    """A copy of the RGB `image` with `shapes` drawn on it in order (later marks on top)."""
    marked = image.convert("RGB") if image.mode != "RGB" else image.copy()
    canvas = ImageDraw.Draw(marked)
    for shape in shapes:
        _draw_one(canvas, shape, marked.size)
    return marked


def draw_pending(image: Image.Image, points: Sequence[Point], color: str) -> Image.Image:
    """Small crosses where the clicks of an unfinished mark landed (for the drawing canvas only)."""
    marked = image.copy()
    canvas = ImageDraw.Draw(marked)
    arm = max(line_width(image.size) * 2, 4)
    for x, y in points:
        for end in ((x - arm, y - arm, x + arm, y + arm), (x - arm, y + arm, x + arm, y - arm)):
            canvas.line(end, fill=COLORS[color], width=max(line_width(image.size) // 2, 1))
    return marked


# --- free-hand brush strokes ----------------------------------------------------------------------

LayerSource = Image.Image | np.ndarray | bytes | str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class Strokes:
    """Brush strokes snapped to the named colours, at the size they were painted (any size with the
    image's aspect ratio): `labels[y, x]` is 0 where nothing is painted and i + 1 where the pixel has
    the i-th colour of COLORS."""

    labels: np.ndarray

    def colors(self) -> list[str]:
        """Names of the colours painted, in the order of COLORS."""
        present = np.unique(self.labels)
        return [name for index, name in enumerate(COLORS, start=1) if index in present]

    def fits(self, size: tuple[int, int]) -> bool:
        """Whether the strokes have the shape of an image of `size` (width, height), to within a pixel."""
        return _same_shape(self.labels.shape[1], self.labels.shape[0], size)

    def __bool__(self) -> bool:
        return bool(self.labels.any())


def read_layer(source: LayerSource) -> np.ndarray:
    """An editor layer as an RGBA uint8 array (height, width, 4), from a PIL image, an array (RGBA, or
    RGB taken as opaque) or PNG/WebP bytes or file; raise InputError for anything else."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] not in (3, 4):
            raise InputError("A brush layer must be an RGBA image (height × width × 4 bytes).")
        _check_layer_size(source.shape[1], source.shape[0])
        if source.shape[2] == 3:
            return np.dstack([source, np.full(source.shape[:2], 255, np.uint8)])
        return source
    if isinstance(source, Image.Image):
        _check_layer_size(*source.size)
        return np.asarray(source.convert("RGBA"))
    if isinstance(source, bytes | bytearray | memoryview):
        return _decode_layer(io.BytesIO(source))
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as fp:
                return _decode_layer(fp)
        except OSError:
            raise InputError("The brush layer could not be read; paint the stroke again.") from None
    raise InputError("A brush layer must be an image.")


def _decode_layer(fp: io.BufferedIOBase | io.BytesIO) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp, formats=("PNG", "WEBP")) as layer:
                _check_layer_size(*layer.size)
                return np.asarray(layer.convert("RGBA"))
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            limit = get_settings().max_image_pixels
            raise InputError(f"A brush layer must have at most {limit:,} pixels.") from None
        except Exception:
            raise InputError("A brush layer must be a PNG or WebP image.") from None


def _check_layer_size(width: int, height: int) -> None:
    limit = get_settings().max_image_pixels
    if width <= 0 or height <= 0 or width * height > limit:
        raise InputError(f"A brush layer must have from 1 to {limit:,} pixels, not {width}×{height}.")


def _same_shape(width: int, height: int, size: tuple[int, int]) -> bool:
    return abs(width * size[1] - height * size[0]) <= max(size)


def _fit(array: np.ndarray, size: tuple[int, int], what: str) -> np.ndarray:
    """`array` (height, width, ...) resized to `size` (width, height) with nearest neighbours, if its
    aspect ratio is that of `size` (to within a pixel); raise InputError otherwise."""
    height, width = array.shape[:2]
    if (width, height) == size:
        return array
    if not _same_shape(width, height, size):
        raise InputError(
            f"The {what} were painted on a {width}×{height} canvas, which does not have the shape of the "
            f"{size[0]}×{size[1]} image: clear them and paint again."
        )
    mode = "RGBA" if array.ndim == 3 else "L"
    return np.asarray(Image.fromarray(array, mode).resize(size, Image.Resampling.NEAREST))


def nearest_colors(rgb: np.ndarray) -> np.ndarray:
    """For RGB pixels (..., 3), the index in COLORS of the nearest named colour (Euclidean in RGB;
    the earlier colour on a tie)."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    nearest = np.empty(len(flat), dtype=np.uint8)
    palette = PALETTE.astype(np.int32)
    for start in range(0, len(flat), 1 << 20):
        chunk = flat[start : start + (1 << 20)]
        distances = ((chunk[:, None, :] - palette[None, :, :]) ** 2).sum(axis=-1)
        nearest[start : start + len(chunk)] = distances.argmin(axis=1)
    return nearest.reshape(rgb.shape[:-1])


def brush_strokes(layers: Sequence[LayerSource]) -> Strokes | None:
    """The strokes painted on the editor's `layers` (later layers on top), each painted pixel (alpha at
    least MIN_BRUSH_ALPHA) snapped to the nearest named colour; None when no layer has any.
    Layers are scaled (nearest neighbour) to the size of the first one."""
    if not isinstance(layers, list | tuple):
        raise InputError("The brush layers must be a list of images.")
    if len(layers) > MAX_BRUSH_LAYERS:
        raise InputError(f"Paint on at most {MAX_BRUSH_LAYERS} layers, not {len(layers)}.")
    labels: np.ndarray | None = None
    for source in layers:
        rgba = read_layer(source)
        if labels is None:
            labels = np.zeros(rgba.shape[:2], dtype=np.uint8)
        rgba = _fit(rgba, (labels.shape[1], labels.shape[0]), "brush layers")
        painted = rgba[..., 3] >= MIN_BRUSH_ALPHA
        labels[painted] = nearest_colors(rgba[..., :3][painted]) + 1
    strokes = Strokes(labels) if labels is not None else None
    return strokes if strokes else None


def paint(image: Image.Image, strokes: Strokes | None) -> Image.Image:
    """A copy of the RGB `image` with the brush `strokes` (scaled to it, nearest neighbour) painted in
    their named colours."""
    painted = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if not strokes:
        return painted
    labels = _fit(strokes.labels, painted.size, "brush strokes")
    pixels = np.array(painted)
    mask = labels > 0
    pixels[mask] = PALETTE[labels[mask] - 1]
    return Image.fromarray(pixels)


def composite_brush(image: Image.Image, layers: Sequence[LayerSource]) -> Image.Image:
    """The RGB `image` with the brush strokes of the editor's RGBA `layers` painted on it, every
    painted pixel in the nearest named colour and every other pixel as it was."""
    return paint(image, brush_strokes(layers))
