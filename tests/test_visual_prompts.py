"""core.visual_prompts: ViP-LLaVA's marks drawn at exact pixels on synthetic canvases, and brush
strokes from RGBA layers composited in the named colours."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.visual_prompts import (
    COLORS,
    KINDS,
    MAX_BRUSH_LAYERS,
    MAX_SHAPES,
    Shape,
    Strokes,
    arrow_head_size,
    brush_strokes,
    brush_width,
    composite_brush,
    draw,
    line_width,
    nearest_colors,
    paint,
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
        ({"kind": "point", "color": "green", "points": [[1, 1]]}, "Unknown colour 'green'. Choose one of: red, lime"),
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


# --- brush strokes ------------------------------------------------------------------------------


def photo(size: tuple[int, int] = (60, 40)) -> Image.Image:
    """A synthetic photo with a different colour at every pixel, none of them a named colour."""
    width, height = size
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.dstack([40 + x % 150, 30 + y % 150, 60 + (x + y) % 120]).astype(np.uint8)
    return Image.fromarray(pixels)


def layer(size: tuple[int, int] = (60, 40)) -> np.ndarray:
    return np.zeros((size[1], size[0], 4), dtype=np.uint8)


def png(array: np.ndarray) -> bytes:
    data = io.BytesIO()
    Image.fromarray(array).save(data, "PNG")
    return data.getvalue()


@pytest.mark.parametrize(
    ("size", "width"), [((336, 336), 3), ((600, 400), 5), ((400, 600), 5), ((100, 80), 1), ((4000, 3000), 35)]
)
def test_brush_is_as_wide_as_a_scribble(size: tuple[int, int], width: int) -> None:
    assert brush_width(size) == width == line_width(size)  # int(3 * max(w, h) / 336), at least 1


def test_painted_pixels_take_exact_named_colours_and_the_rest_stays() -> None:
    base = photo()
    strokes = layer()
    strokes[10:13, 5:30] = (*COLORS["lime"], 255)
    strokes[20, 40:45] = (*COLORS["purple"], 255)
    painted = np.asarray(composite_brush(base, [strokes]))
    mask = strokes[..., 3] > 0
    assert (painted[10:13, 5:30] == COLORS["lime"]).all()
    assert (painted[20, 40:45] == COLORS["purple"]).all()
    assert np.array_equal(painted[~mask], np.asarray(base)[~mask])
    assert np.asarray(base)[11, 10].tolist() != list(COLORS["lime"])  # the input is untouched


@pytest.mark.parametrize(
    ("rgba", "name"),
    [
        ((250, 10, 5, 255), "red"),  # off by a little
        ((255, 0, 0, 140), "red"),  # an anti-aliased edge, more than half opaque
        ((200, 150, 0, 200), "orange"),
        ((240, 205, 20, 255), "gold"),
        ((120, 10, 120, 255), "purple"),
        ((30, 230, 240, 255), "aqua"),
        ((255, 255, 255, 255), "yellow"),  # white is nearest to yellow (then aqua and fuchsia)
    ],
)
def test_off_palette_pixels_snap_to_the_nearest_named_colour(rgba: tuple[int, ...], name: str) -> None:
    strokes = layer()
    strokes[5, 5] = rgba
    painted = composite_brush(photo(), [strokes])
    assert painted.getpixel((5, 5)) == COLORS[name]
    assert brush_strokes([strokes]).colors() == [name]


def test_nearest_colours_of_the_palette_itself() -> None:
    palette = np.array([list(COLORS.values())], dtype=np.uint8)
    assert nearest_colors(palette).tolist() == [list(range(len(COLORS)))]


@pytest.mark.parametrize("alpha", [0, 1, 60, 127])
def test_near_transparent_pixels_are_ignored(alpha: int) -> None:
    strokes = layer()
    strokes[5, 5] = (255, 0, 0, alpha)
    strokes[6, 6] = (0, 0, 255, 128)  # half opaque counts
    painted = composite_brush(photo(), [strokes])
    assert painted.getpixel((5, 5)) == photo().getpixel((5, 5))
    assert painted.getpixel((6, 6)) == COLORS["blue"]
    assert brush_strokes([strokes]).colors() == ["blue"]


def test_nothing_painted() -> None:
    base = photo()
    assert brush_strokes([]) is None
    assert brush_strokes([layer(), layer()]) is None
    assert brush_strokes([np.dstack([np.full((40, 60, 3), 255, np.uint8), np.full((40, 60), 100, np.uint8)])]) is None
    unchanged = paint(base, None)
    assert np.array_equal(np.asarray(unchanged), np.asarray(base)) and unchanged is not base


def test_later_layers_paint_over_earlier_ones() -> None:
    first, second = layer(), layer()
    first[5, 5:10] = (*COLORS["red"], 255)
    second[5, 8:12] = (*COLORS["blue"], 255)
    painted = composite_brush(photo(), [first, second])
    assert [painted.getpixel((x, 5)) for x in range(5, 12)] == [COLORS["red"]] * 3 + [COLORS["blue"]] * 4
    assert brush_strokes([first, second]).colors() == ["red", "blue"]  # in the order of the palette


def test_a_layer_of_another_size_is_scaled_with_nearest_neighbours() -> None:
    small = layer((30, 20))
    small[5, 5] = (*COLORS["fuchsia"], 255)
    painted = np.asarray(composite_brush(photo((60, 40)), [small]))
    fuchsia = (painted == COLORS["fuchsia"]).all(axis=-1)
    assert np.argwhere(fuchsia).tolist() == [[10, 10], [10, 11], [11, 10], [11, 11]]
    big = layer((120, 80))
    big[21, 41] = (*COLORS["gold"], 255)
    big[0, 0] = (*COLORS["gold"], 100)  # faint: not painted
    painted = np.asarray(composite_brush(photo((60, 40)), [big]))
    assert np.argwhere((painted == COLORS["gold"]).all(axis=-1)).tolist() == [[10, 20]]
    strokes = brush_strokes([small])
    assert strokes.fits((60, 40)) and strokes.fits((61, 40)) and not strokes.fits((60, 60))


def test_a_layer_of_another_shape_is_refused_clearly() -> None:
    square = layer((40, 40))
    square[5, 5] = (*COLORS["red"], 255)
    with pytest.raises(InputError, match=r"painted on a 40×40 canvas, which does not have the shape of the 60×40"):
        composite_brush(photo((60, 40)), [square])
    with pytest.raises(InputError, match="does not have the shape"):
        brush_strokes([layer((60, 40)), square])


def test_layers_in_every_form_the_editor_sends(tmp_path: Path) -> None:
    strokes = layer()
    strokes[3, 4] = (*COLORS["aqua"], 255)
    path = tmp_path / "layer.png"
    path.write_bytes(png(strokes))
    webp = io.BytesIO()
    Image.fromarray(strokes).save(webp, "WEBP", lossless=True)
    for source in [strokes, Image.fromarray(strokes), png(strokes), str(path), path, webp.getvalue()]:
        painted = composite_brush(photo(), [source])
        assert painted.getpixel((4, 3)) == COLORS["aqua"] and painted.getpixel((5, 3)) == photo().getpixel((5, 3))
    opaque = np.zeros((40, 60, 3), np.uint8)  # no alpha: every pixel is painted (black is nearest to purple)
    assert np.asarray(composite_brush(photo(), [opaque])).reshape(-1, 3).tolist() == [[128, 0, 128]] * 2400


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([b"not a picture"], "must be a PNG or WebP image"),
        ([b""], "must be a PNG or WebP image"),
        ([None], "must be an image"),
        ([{"path": "/etc/passwd"}], "must be an image"),
        (["/no/such/layer.png"], "could not be read"),
        ([np.zeros((4, 4), np.uint8)], "must be an RGBA image"),
        ([np.zeros((4, 4, 4), np.float32)], "must be an RGBA image"),
        ([np.zeros((0, 4, 4), np.uint8)], "from 1 to"),
        ("layer.png", "must be a list of images"),
        ([layer()] * (MAX_BRUSH_LAYERS + 1), f"at most {MAX_BRUSH_LAYERS} layers"),
    ],
)
def test_bad_layers_are_refused_clearly(layers: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        brush_strokes(layers)  # type: ignore[arg-type]


def test_a_jpeg_layer_is_refused() -> None:
    data = io.BytesIO()
    Image.new("RGB", (8, 8)).save(data, "JPEG")
    with pytest.raises(InputError, match="PNG or WebP"):
        brush_strokes([data.getvalue()])


def test_a_layer_over_the_pixel_limit_is_refused_before_decoding(fresh_settings: pytest.MonkeyPatch) -> None:
    fresh_settings.setenv("PLAYGROUND_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match="from 1 to 1,000 pixels, not 60×40"):
        brush_strokes([png(layer())])
    with pytest.raises(InputError, match="not 60×40"):
        brush_strokes([layer()])
    assert brush_strokes([png(layer((20, 10)))]) is None


def test_strokes_colour_names_and_truth() -> None:
    labels = np.zeros((4, 4), np.uint8)
    assert not Strokes(labels) and Strokes(labels).colors() == []
    labels[0, 0], labels[1, 1] = 9, 2  # gold, lime
    assert Strokes(labels) and Strokes(labels).colors() == ["lime", "gold"]
    painted = paint(photo((4, 4)), Strokes(labels))
    assert painted.getpixel((0, 0)) == COLORS["gold"] and painted.getpixel((1, 1)) == COLORS["lime"]
