"""Turn whatever the user uploaded into a safe, fully loaded RGB image, or a clear error.

Rounding when scaling to 8 bits is "round half up" (floor(x + 0.5)) everywhere, so a float
0.5 becomes 128 and a 16-bit 32768 becomes 128.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from core.errors import UserFacingError
from core.settings import get_settings

_OPENERS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")  # JPEG's opener also yields MPO images
ALLOWED_FORMATS: frozenset[str] = frozenset({*_OPENERS, "MPO"})

ImageSource = str | os.PathLike[str] | bytes | Image.Image | np.ndarray | None

_FORMAT_NAMES = "JPEG, PNG, GIF, WebP, BMP or TIFF"
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_ORIENTATION = 0x0112
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


class ImageInputError(UserFacingError, ValueError):
    """An input that cannot be used as an image; str() is a short message for the end user."""


def describe(image: Image.Image) -> str:
    """Size of an image for the UI, e.g. "640×480"."""
    return f"{image.width}×{image.height}"


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Return `source` as a fully loaded RGB image detached from any file, or raise ImageInputError.

    `max_pixels` defaults to the `max_image_pixels` setting.
    """
    limit = get_settings().max_image_pixels if max_pixels is None else max_pixels
    if source is None or (isinstance(source, str) and not source):
        raise ImageInputError("No image was given. Upload an image or pick an example.")
    if isinstance(source, Image.Image):
        return _from_pil(source, limit)
    if isinstance(source, np.ndarray):
        return _from_array(source, limit)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise ImageInputError("The file is empty.")
        return _from_stream(io.BytesIO(source), limit)
    if isinstance(source, (str, os.PathLike)):
        return _from_path(os.fspath(source), limit)
    raise ImageInputError("The input could not be read as an image.")


def _from_path(path: str | bytes, limit: int) -> Image.Image:
    try:
        fp = open(path, "rb")
    except FileNotFoundError:
        raise ImageInputError("The file could not be found; please upload it again.") from None
    except IsADirectoryError:
        raise ImageInputError("The upload is a folder, not an image file.") from None
    except OSError:
        raise ImageInputError("The file could not be read; please upload it again.") from None
    with fp:
        if os.fstat(fp.fileno()).st_size == 0:
            raise ImageInputError("The file is empty.")
        return _from_stream(fp, limit)


def _from_stream(fp: IO[bytes], limit: int) -> Image.Image:
    with warnings.catch_warnings():
        # Below PIL's own threshold our size check is stricter; above it, PIL's warning would
        # refuse images that the configured limit allows.
        pil_limit = Image.MAX_IMAGE_PIXELS
        warnings.simplefilter(
            "error" if pil_limit is None or limit <= pil_limit else "ignore", Image.DecompressionBombWarning
        )
        try:
            image = Image.open(fp, formats=_OPENERS)
        except _BOMB_ERRORS as exc:
            raise _bomb_error(exc, limit) from None
        except Exception:
            raise ImageInputError(f"This file is not an image in a supported format ({_FORMAT_NAMES}).") from None
        with image:
            _check_size(image.width, image.height, limit)
            try:
                image.seek(0)
                image.load()
            except _BOMB_ERRORS as exc:
                raise _bomb_error(exc, limit) from None
            except Exception:
                raise ImageInputError("The image file is truncated or corrupted.") from None
            return _to_rgb(_exif_transpose(image))


def _from_pil(image: Image.Image, limit: int) -> Image.Image:
    _check_size(image.width, image.height, limit)
    try:
        image.load()
    except Exception:
        raise ImageInputError("The image file is truncated or corrupted.") from None
    return _to_rgb(_exif_transpose(image))


def _from_array(array: np.ndarray, limit: int) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageInputError("The image data has an unsupported shape.")
    height, width = array.shape[:2]
    _check_size(width, height, limit)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(_to_uint8(array))))


def _check_size(width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageInputError(f"The image has no pixels ({width}×{height}).")
    if width * height > limit:
        raise ImageInputError(
            f"The image is {width}×{height} pixels ({_megapixels(width * height)} megapixels); "
            f"the limit is {_megapixels(limit)} megapixels. Please upload a smaller image."
        )


def _bomb_error(exc: Exception, limit: int) -> ImageInputError:
    if isinstance(exc, Image.DecompressionBombError) and Image.MAX_IMAGE_PIXELS is not None:
        limit = min(limit, 2 * Image.MAX_IMAGE_PIXELS)
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f" ({_megapixels(int(found[1]))} megapixels)" if found else ""
    return ImageInputError(
        f"The image is too large{size}; the limit is {_megapixels(limit)} megapixels. Please upload a smaller image."
    )


def _megapixels(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:.1f}" if value >= 0.1 else f"{value:.2g}"


def _exif_transpose(image: Image.Image) -> Image.Image:
    try:
        if image.getexif().get(_ORIENTATION, 1) in range(2, 9):
            return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: keep the image as stored
        pass
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """A new RGB image; alpha is composited onto white, high bit depths are scaled to 8 bits."""
    mode = image.mode
    if mode == "La":
        image, mode = image.convert("LA"), "LA"
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        result = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        result = result.convert("RGB")
    elif mode == "RGB":
        result = image.copy()
    elif mode == "F" or mode.startswith("I"):
        result = Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    else:
        try:
            result = image.convert("RGB")
        except Exception:
            raise ImageInputError("This image uses an unsupported colour format.") from None
    result.info.clear()
    return result


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale pixel values to 0..255 by the range of their type (or of the data when unknown)."""
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        return array.astype(np.uint8) * 255
    if kind in "ui":
        if kind == "u" and array.dtype.itemsize == 2:
            return _round(array / 257.0)
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high <= 65535:
            return _round(array / 257.0)
        return _normalise(array.astype(np.float64))
    if kind == "f":
        values = np.where(np.isfinite(array), array, 0).astype(np.float64)
        if values.min() >= 0 and values.max() <= 1:
            return _round(values * 255)
        return _normalise(values)
    raise ImageInputError("The image data has an unsupported pixel type.")


def _normalise(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return _round((values - low) * (255.0 / (high - low)))


def _round(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)
