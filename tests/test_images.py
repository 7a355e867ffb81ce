"""Tests for core.images: every kind of bad upload and the exact pixels of every conversion."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFile

import core.settings
from core.images import ALLOWED_FORMATS, ImageInputError, describe, load_image

WHITE = (255, 255, 255)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    core.settings.reset_settings()
    yield
    core.settings.reset_settings()


def save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def opened(path: Path) -> SimpleNamespace:
    """What PIL itself makes of a file (format, mode, info, n_frames), with the file closed again."""
    with Image.open(path) as image:
        return SimpleNamespace(
            format=image.format, mode=image.mode, info=image.info, n_frames=getattr(image, "n_frames", 1)
        )


def noise(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def png_with_size(width: int, height: int) -> bytes:
    """A real 1×1 PNG whose IHDR claims another size, with a valid CRC."""
    data = bytearray(png_bytes(Image.new("RGB", (1, 1), (1, 2, 3))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- missing, empty and unreadable input -------------------------------------------------


@pytest.mark.parametrize("source", [None, ""])
def test_no_image(source: object) -> None:
    with pytest.raises(ImageInputError, match="^No image was given"):
        load_image(source)  # type: ignore[arg-type]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageInputError, match="^The file is empty"):
        load_image(path)
    with pytest.raises(ImageInputError, match="^The file is empty"):
        load_image(b"")


def test_missing_path_does_not_leak_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="could not be found") as info:
        load_image(tmp_path / "nope.png")
    assert str(tmp_path) not in str(info.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="folder"):
        load_image(str(tmp_path))


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, this is not an image\n")
    with pytest.raises(ImageInputError, match=r"not an image in a supported format \(JPEG, PNG"):
        load_image(str(path))


def test_pdf_and_zip_bytes() -> None:
    for data in (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", b"PK\x03\x04" + b"\0" * 40):
        with pytest.raises(ImageInputError, match="not an image in a supported format"):
            load_image(data)


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX"])
def test_format_outside_allowed_set(tmp_path: Path, fmt: str) -> None:
    path = save(Image.new("RGB", (16, 16), (10, 20, 30)), tmp_path / f"x.{fmt.lower()}", format=fmt)
    assert opened(path).format == fmt  # PIL itself would decode it
    with pytest.raises(ImageInputError, match="not an image in a supported format"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    whole = io.BytesIO()
    noise().save(whole, fmt)
    data = whole.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageInputError, match="^The image file is truncated or corrupted"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_unsupported_input_type() -> None:
    with pytest.raises(ImageInputError):
        load_image(12345)  # type: ignore[arg-type]


# --- size limits ---------------------------------------------------------------------------


def test_pixel_limit_argument(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (20, 20)), tmp_path / "a.png")
    with pytest.raises(ImageInputError, match=r"^The image is 20×20 pixels .*the limit is 0\.0001 megapixels"):
        load_image(path, max_pixels=100)
    assert load_image(path, max_pixels=400).size == (20, 20)


def test_pixel_limit_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(Image.new("RGB", (20, 20)), tmp_path / "a.png")
    monkeypatch.setenv("PLAYGROUND_MAX_IMAGE_PIXELS", "399")
    core.settings.reset_settings()
    with pytest.raises(ImageInputError, match="Please upload a smaller image"):
        load_image(path)
    with pytest.raises(ImageInputError, match="20×20"):
        load_image(Image.new("RGB", (20, 20)))
    with pytest.raises(ImageInputError, match="20×20"):
        load_image(np.zeros((20, 20, 3), dtype=np.uint8))


def test_limit_checked_before_decoding() -> None:
    # The header says 3000×3000 but there is 1 pixel of data: decoding would report "truncated".
    expected = r"3000×3000 pixels \(9\.0 megapixels\); the limit is 1\.0 megapixels"
    with pytest.raises(ImageInputError, match=expected):
        load_image(png_with_size(3000, 3000), max_pixels=1_000_000)


def test_decompression_bomb_header_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_size(100_000, 100_000))
    start = time.perf_counter()
    expected = r"too large \(10000\.0 megapixels\); the limit is 50\.0 megapixels"
    with pytest.raises(ImageInputError, match=expected):
        load_image(path)
    assert time.perf_counter() - start < 1


def test_decompression_bomb_warning_is_an_error() -> None:
    # Between PIL's warning threshold (~89 MP) and its hard error (~179 MP).
    with pytest.raises(ImageInputError, match="too large"):
        load_image(png_with_size(10_000, 10_000))


def test_zero_size() -> None:
    with pytest.raises(ImageInputError, match="no pixels"):
        load_image(Image.new("RGB", (0, 5)))
    with pytest.raises(ImageInputError, match="no pixels"):
        load_image(np.zeros((0, 5, 3), dtype=np.uint8))


# --- formats, frames and orientation ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_lossless_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    path = save(Image.new("RGB", (5, 3), (0, 0, 255)), tmp_path / f"x.{fmt.lower()}", format=fmt, lossless=True)
    image = load_image(path)
    assert (image.mode, image.size, image.getpixel((4, 2))) == ("RGB", (5, 3), (0, 0, 255))


def test_jpeg_and_result_is_detached(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (8, 8), (200, 100, 50)), tmp_path / "x.jpg", quality=95)
    image = load_image(path)
    assert not isinstance(image, ImageFile.ImageFile)
    assert image.info == {}
    path.unlink()
    assert np.allclose(image.getpixel((3, 3)), (200, 100, 50), atol=3)
    assert {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"} <= ALLOWED_FORMATS


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert opened(path).n_frames == 2
    assert load_image(path).getpixel((0, 0)) == (255, 0, 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (4, 2), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 2, 2))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    path = save(image, tmp_path / "rot.png", exif=exif)
    loaded = load_image(path)
    assert loaded.size == (2, 4)
    assert loaded.getpixel((0, 0)) == (255, 0, 0)  # the left edge is now on top
    assert loaded.getpixel((0, 3)) == (0, 0, 255)


# --- mode conversion ---------------------------------------------------------------------------


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (2, 1))
    image.putpixel((0, 0), (255, 0, 0, 128))
    image.putpixel((1, 0), (0, 0, 0, 0))
    loaded = load_image(save(image, tmp_path / "a.png"))
    # 255 * (255 - 128) / 255 = 127
    assert loaded.getpixel((0, 0)) == (255, 127, 127)
    assert loaded.getpixel((1, 0)) == WHITE


def test_pil_input_is_not_mutated() -> None:
    image = Image.new("RGBA", (1, 1), (255, 0, 0, 128))
    loaded = load_image(image)
    assert loaded is not image and loaded.mode == "RGB"
    assert (image.mode, image.getpixel((0, 0))) == ("RGBA", (255, 0, 0, 128))
    rgb = Image.new("RGB", (1, 1), (1, 2, 3))
    assert load_image(rgb) is not rgb


def test_la(tmp_path: Path) -> None:
    image = Image.new("LA", (3, 1))
    image.putpixel((0, 0), (100, 255))
    image.putpixel((1, 0), (0, 128))
    image.putpixel((2, 0), (0, 0))
    loaded = load_image(save(image, tmp_path / "la.png"))
    assert [loaded.getpixel((x, 0)) for x in range(3)] == [(100, 100, 100), (127, 127, 127), WHITE]


def test_premultiplied_la_and_rgba() -> None:
    assert load_image(Image.new("La", (1, 1), (0, 0))).getpixel((0, 0)) == WHITE
    assert load_image(Image.new("RGBa", (1, 1), (0, 0, 0, 0))).getpixel((0, 0)) == WHITE


def test_palette_with_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    path = save(image, tmp_path / "p.png", transparency=0)  # writes a tRNS chunk
    assert opened(path).info.get("transparency") is not None
    loaded = load_image(path)
    assert (loaded.getpixel((0, 0)), loaded.getpixel((1, 0))) == (WHITE, (0, 0, 255))


def test_palette_without_transparency(tmp_path: Path) -> None:
    image = Image.new("P", (1, 1))
    image.putpalette([10, 20, 30])
    assert load_image(save(image, tmp_path / "p.png")).getpixel((0, 0)) == (10, 20, 30)


def test_grayscale_and_one_bit(tmp_path: Path) -> None:
    assert load_image(save(Image.new("L", (1, 1), 77), tmp_path / "l.png")).getpixel((0, 0)) == (77, 77, 77)
    bits = Image.new("1", (2, 1), 0)
    bits.putpixel((1, 0), 1)
    loaded = load_image(save(bits, tmp_path / "1.png"))
    assert (loaded.getpixel((0, 0)), loaded.getpixel((1, 0))) == ((0, 0, 0), WHITE)


def test_cmyk_tiff_exact(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (2, 2), (255, 0, 0, 0)), tmp_path / "c.tiff")
    assert opened(path).mode == "CMYK"
    assert load_image(path).getpixel((1, 1)) == (0, 255, 255)


def test_cmyk_jpeg_approximately(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), tmp_path / "c.jpg", quality=95)
    assert opened(path).mode == "CMYK"
    assert np.allclose(load_image(path).getpixel((4, 4)), (0, 255, 255), atol=3)


def test_other_colour_spaces() -> None:
    assert load_image(Image.new("HSV", (1, 1), (0, 0, 200))).getpixel((0, 0)) == (200, 200, 200)
    assert load_image(Image.new("YCbCr", (1, 1), (255, 128, 128))).getpixel((0, 0)) == WHITE


SIXTEEN_BIT = [0, 1000, 32768, 65535]
SIXTEEN_BIT_AS_8 = [0, 4, 128, 255]  # value / 257, rounded half up; never clipped to white


def test_sixteen_bit_png(tmp_path: Path) -> None:
    array = np.array([SIXTEEN_BIT], dtype=np.uint16)
    path = save(Image.fromarray(array), tmp_path / "16.png")
    assert opened(path).mode in ("I;16", "I")  # Pillow 12 opens 16-bit grey PNGs as I;16
    loaded = load_image(path)
    assert [loaded.getpixel((x, 0))[0] for x in range(4)] == SIXTEEN_BIT_AS_8
    assert loaded.getpixel((1, 0)) == (4, 4, 4)


def test_sixteen_bit_big_endian() -> None:
    image = Image.frombytes("I;16B", (4, 1), np.array(SIXTEEN_BIT, dtype=">u2").tobytes())
    assert [load_image(image).getpixel((x, 0))[0] for x in range(4)] == SIXTEEN_BIT_AS_8


def test_mode_i() -> None:
    in_range = Image.fromarray(np.array([SIXTEEN_BIT], dtype=np.int32))
    assert in_range.mode == "I"
    assert [load_image(in_range).getpixel((x, 0))[0] for x in range(4)] == SIXTEEN_BIT_AS_8
    wide = Image.fromarray(np.array([[-100, 0, 100, 100_000]], dtype=np.int32))
    # min-max: (v + 100) * 255 / 100100
    assert [load_image(wide).getpixel((x, 0))[0] for x in range(4)] == [0, 0, 1, 255]


def test_mode_f() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32))
    assert unit.mode == "F"
    assert [load_image(unit).getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]  # 127.5 rounds up
    wide = Image.fromarray(np.array([[-1.0, 0.0, 3.0, np.inf]], dtype=np.float32))
    assert [load_image(wide).getpixel((x, 0))[0] for x in range(4)] == [0, 64, 255, 64]


# --- bytes and numpy input ---------------------------------------------------------------------


def test_bytes_input() -> None:
    loaded = load_image(png_bytes(Image.new("RGBA", (3, 2), (0, 255, 0, 255))))
    assert (loaded.mode, loaded.size, loaded.getpixel((2, 1))) == ("RGB", (3, 2), (0, 255, 0))


def test_numpy_uint8_rgb_and_rgba() -> None:
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[1, 2] = (9, 8, 7)
    loaded = load_image(array)
    assert (loaded.size, loaded.getpixel((2, 1))) == ((3, 2), (9, 8, 7))
    rgba = np.zeros((1, 1, 4), dtype=np.uint8)
    assert load_image(rgba).getpixel((0, 0)) == WHITE
    assert load_image(np.full((1, 1, 1), 50, dtype=np.uint8)).getpixel((0, 0)) == (50, 50, 50)


def test_numpy_uint16_and_float() -> None:
    loaded = load_image(np.array([SIXTEEN_BIT], dtype=np.uint16))
    assert [loaded.getpixel((x, 0))[0] for x in range(4)] == SIXTEEN_BIT_AS_8
    loaded = load_image(np.array([[0.0, 0.25, 0.5, 1.0]]))
    assert [loaded.getpixel((x, 0)) for x in range(4)] == [(0, 0, 0), (64, 64, 64), (128, 128, 128), WHITE]
    assert load_image(np.array([[True, False]])).getpixel((0, 0)) == WHITE


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2), (2, 2, 5), (1, 2, 2, 3)])
def test_numpy_bad_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ImageInputError, match="unsupported shape"):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_numpy_bad_dtype() -> None:
    with pytest.raises(ImageInputError, match="unsupported pixel type"):
        load_image(np.zeros((2, 2), dtype=np.complex64))


def test_describe() -> None:
    assert describe(Image.new("RGB", (640, 480))) == "640×480"


def test_mpo_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = tmp_path / "phone.jpg"
    frames[0].save(path, "MPO", save_all=True, append_images=frames[1:], quality=95)
    assert opened(path).format == "MPO"
    assert np.allclose(load_image(path).getpixel((4, 4)), (255, 0, 0), atol=3)
