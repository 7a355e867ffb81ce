"""Visual prompts drawn onto the RGB image, the way ViP-LLaVA saw them in training.

Shapes, colour names and sizes follow ViP-LLaVA's training renderer
(github.com/WisconsinAIVision/ViP-LLaVA, `llava/visual_prompt_generator.py`): nine named colours,
and line widths and point radii in units of a 336-pixel image, scaled by the longer side of the
image (`int(k * max(width, height) / 336)`, at least 1). Training drew widths at random from a range
per shape (rectangle and ellipse 2-8, arrow 1-6, scribble 2-12, point radius 5-20); here they are
fixed inside every range: 3 for lines (the width of the renderer's "constant" style) and 8 for
points. Marks are opaque (training used alpha 96-255) so that they render exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from core.errors import InputError

SIZE_ANCHOR = 336
LINE_UNITS = 3
POINT_UNITS = 8
ARROW_HEAD_UNITS = 6
MAX_SHAPES = 20
MAX_SCRIBBLE_POINTS = 500

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


def point_radius(size: tuple[int, int]) -> int:
    """Radius of a point mark in pixels: 8 at 336 px, at least 1."""
    return max(int(POINT_UNITS * scale(size)), 1)


def arrow_head_size(size: tuple[int, int], length: float) -> float:
    """Length of an arrow head's sides: a third of the arrow, at least 6 and at most 20 units."""
    units = scale(size)
    return min(max(length / 3, ARROW_HEAD_UNITS * units), 20 * units)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError("Mark coordinates must be numbers (pixels).")
    return float(value)


def parse_shape(data: Any, size: tuple[int, int]) -> Shape:
    """A Shape from `{"kind", "color", "points": [[x, y], ...]}`, checked against an image of `size`."""
    if isinstance(data, Shape):
        data = data.to_dict()
    if not isinstance(data, dict):
        raise InputError('Each mark must be an object like {"kind": "rectangle", "color": "red", "points": [...]}.')
    kind, color, points = data.get("kind"), data.get("color"), data.get("points")
    if kind not in POINTS_NEEDED:
        raise InputError(f"Unknown kind of mark {str(kind)[:30]!r}. Use one of: {', '.join(KINDS)}.")
    if color not in COLORS:
        raise InputError(f"Unknown colour {str(color)[:30]!r}. Use one of: {', '.join(COLORS)}.")
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
