"""core.visual_prompts: ViP-LLaVA's marks drawn at exact pixels on synthetic canvases."""

from __future__ import annotations

import pytest
from PIL import Image

from core.errors import InputError
from core.visual_prompts import (
    COLORS,
    KINDS,
    MAX_SHAPES,
    Shape,
    arrow_head_size,
    draw,
    line_width,
    parse_shape,
    parse_shapes,
    point_radius,
)

WHITE = (255, 255, 255)


def canvas(size: tuple[int, int] = (336, 336)) -> Image.Image:
    return Image.new("RGB", size, WHITE)


def test_palette_is_vip_llavas_color_pool() -> None:
    assert list(COLORS) == ["red", "lime", "blue", "yellow", "fuchsia", "aqua", "orange", "purple", "gold"]
    assert COLORS["red"] == (255, 0, 0) and COLORS["orange"] == (255, 165, 0) and COLORS["purple"] == (128, 0, 128)
    assert KINDS == ("rectangle", "ellipse", "arrow", "point", "scribble")


@pytest.mark.parametrize(
    ("size", "width", "radius"),
    [((336, 336), 3, 8), ((672, 100), 6, 16), ((600, 400), 5, 14), ((100, 80), 1, 2), ((20, 10), 1, 1)],
)
def test_sizes_follow_the_longer_side(size: tuple[int, int], width: int, radius: int) -> None:
    assert line_width(size) == width  # int(3 * max(w, h) / 336), at least 1
    assert point_radius(size) == radius  # int(8 * max(w, h) / 336), at least 1


def test_arrow_head_is_a_third_of_the_arrow_within_limits() -> None:
    assert arrow_head_size((336, 336), 30) == 10
    assert arrow_head_size((336, 336), 3) == 6
    assert arrow_head_size((336, 336), 300) == 20
    assert arrow_head_size((672, 672), 30) == 12


def test_rectangle_outline_is_drawn_inwards_with_the_line_width() -> None:
    shape = Shape("rectangle", "red", ((200, 150), (100, 100)))  # corners in any order
    image = draw(canvas(), [shape])
    for x in (100, 101, 102, 198, 199, 200):
        assert image.getpixel((x, 120)) == COLORS["red"]
    for x in (99, 103, 150, 197, 201):
        assert image.getpixel((x, 120)) == WHITE
    for y in (100, 102, 148, 150):
        assert image.getpixel((150, y)) == COLORS["red"]
    assert image.getpixel((150, 103)) == WHITE and image.getpixel((150, 151)) == WHITE


def test_line_width_scales_with_the_image() -> None:
    shape = Shape("rectangle", "blue", ((100, 100), (300, 200)))
    image = draw(canvas((672, 400)), [shape])  # width 6
    assert [image.getpixel((x, 150)) for x in range(99, 107)] == [WHITE] + [COLORS["blue"]] * 6 + [WHITE]


def test_ellipse_outline() -> None:
    image = draw(canvas(), [Shape("ellipse", "lime", ((50, 50), (150, 100)))])
    for point in ((50, 75), (52, 75), (150, 75), (100, 50), (100, 100)):
        assert image.getpixel(point) == COLORS["lime"]
    for point in ((100, 75), (54, 75), (49, 75), (50, 50), (150, 100)):
        assert image.getpixel(point) == WHITE


def test_arrow_shaft_and_filled_head_at_the_second_point() -> None:
    image = draw(canvas(), [Shape("arrow", "fuchsia", ((20, 20), (120, 20)))])
    color = COLORS["fuchsia"]
    for x in (20, 60, 100, 119):
        assert image.getpixel((x, 20)) == color
    # head: a triangle of sides 20 at the head, its wings at 60 degrees from the shaft
    assert image.getpixel((112, 30)) == color and image.getpixel((112, 10)) == color
    assert image.getpixel((105, 30)) == WHITE and image.getpixel((60, 30)) == WHITE
    assert image.getpixel((122, 20)) == WHITE


def test_point_is_a_filled_disc() -> None:
    image = draw(canvas(), [Shape("point", "aqua", ((200, 200),))])
    for point in ((200, 200), (206, 200), (200, 193), (195, 195)):
        assert image.getpixel(point) == COLORS["aqua"]
    for point in ((210, 200), (200, 190), (207, 207)):
        assert image.getpixel(point) == WHITE


def test_scribble_is_a_polyline() -> None:
    image = draw(canvas(), [Shape("scribble", "orange", ((10, 300), (100, 300), (100, 330)))])
    for point in ((10, 300), (50, 301), (100, 315), (99, 330)):
        assert image.getpixel(point) == COLORS["orange"]
    assert image.getpixel((50, 305)) == WHITE and image.getpixel((90, 320)) == WHITE


def test_several_marks_later_ones_on_top_and_the_input_untouched() -> None:
    base = canvas()
    shapes = [Shape("point", "red", ((100, 100),)), Shape("point", "gold", ((104, 100),))]
    image = draw(base, shapes)
    assert image.getpixel((94, 100)) == COLORS["red"] and image.getpixel((104, 100)) == COLORS["gold"]
    assert image.getpixel((100, 100)) == COLORS["gold"]
    assert base.getpixel((100, 100)) == WHITE and image is not base


def test_parse_shapes_round_trip() -> None:
    data = [
        {"kind": "rectangle", "color": "red", "points": [[0, 0], [335, 335]]},
        {"kind": "scribble", "color": "purple", "points": [[1, 2], [3.5, 4], [5, 6]]},
    ]
    shapes = parse_shapes(data, (336, 336))
    assert shapes[1] == Shape("scribble", "purple", ((1.0, 2.0), (3.5, 4.0), (5.0, 6.0)))
    assert [shape.to_dict() for shape in shapes] == data
    assert shapes[0].phrase() == "within the red rectangle"
    assert parse_shapes(None, (10, 10)) == [] and parse_shapes([], (10, 10)) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "triangle", "color": "red", "points": [[1, 1], [2, 2]]}, "Unknown kind of mark 'triangle'"),
        ({"kind": "point", "color": "green", "points": [[1, 1]]}, "Unknown colour 'green'. Use one of: red, lime"),
        ({"kind": "point", "color": "red", "points": [[1, 1], [2, 2]]}, "A point needs 1 point, not 2"),
        ({"kind": "arrow", "color": "red", "points": [[1, 1]]}, "An? arrow needs 2 points, not 1"),
        ({"kind": "rectangle", "color": "red", "points": [[5, 5], [5, 5]]}, "must be at different places"),
        ({"kind": "point", "color": "red", "points": [[100, 5]]}, r"\(100, 5\) of a point is outside the 100×50"),
        ({"kind": "point", "color": "red", "points": [[-1, 5]]}, "outside"),
        ({"kind": "point", "color": "red", "points": [["a", 5]]}, "must be numbers"),
        ({"kind": "point", "color": "red", "points": [[float("nan"), 5]]}, "must be numbers"),
        ({"kind": "scribble", "color": "red", "points": [[1, 1]]}, "A scribble needs from 2 to"),
        ({"kind": "point", "color": "red", "points": "1,1"}, r"list of \[x, y\] pairs"),
        ("rectangle", "Each mark must be an object"),
    ],
)
def test_bad_shapes_are_refused_clearly(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_shape(data, (100, 50))


def test_too_many_shapes() -> None:
    point = {"kind": "point", "color": "red", "points": [[1, 1]]}
    assert len(parse_shapes([point] * MAX_SHAPES, (10, 10))) == MAX_SHAPES
    with pytest.raises(InputError, match=f"at most {MAX_SHAPES} marks, not {MAX_SHAPES + 1}"):
        parse_shapes([point] * (MAX_SHAPES + 1), (10, 10))
    with pytest.raises(InputError, match="must be a list"):
        parse_shapes({"kind": "point"}, (10, 10))
