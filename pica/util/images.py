"""Safe image loading: every way an image file can be bad becomes one clear ``InputError``."""

from __future__ import annotations

import warnings
from pathlib import Path

from pica.errors import InputError

# Larger images are refused as likely decompression bombs (PIL warns at ~89 MP, errors at 2x).
MAX_PIXELS = 89_478_485


def load_image(path: str | Path):
    """Open an image file fully and return it as an RGB ``PIL.Image``.

    Transparent images are composited on white. The pixel data is read eagerly so truncated
    files fail here, not later inside a model.

    Raises:
        InputError: missing file, directory, empty file, not an image, truncated or corrupt
            data, or more than ``MAX_PIXELS`` pixels.
    """
    from PIL import Image, ImageFile

    path = Path(path)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    if not path.is_file():
        raise InputError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"image file is empty (0 bytes): {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise InputError(
                        f"image too large: {path} is {width}x{height} pixels"
                        f" (limit {MAX_PIXELS:,}); downscale it first"
                    )
                # Some libraries switch truncated-image tolerance on globally; we never want it.
                tolerant, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
                try:
                    img.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = tolerant
                return to_rgb(img)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise InputError(f"image too large (possible decompression bomb): {path}") from e
        except Image.UnidentifiedImageError as e:
            raise InputError(f"not an image (unrecognised format): {path}") from e
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"image is truncated or corrupt: {path} ({e})") from e


def to_rgb(img):
    """Convert any PIL image to RGB as a viewer shows it: turned upright by its EXIF orientation
    (phone photos), 16-bit and floating-point grey scaled to 8 bits (not clipped to white), and
    transparency (alpha, palette or colour-key) composited on a white background."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _grey_to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _grey_to_8bit(img):
    """An 8-bit ``L`` image of a 16-bit (``I;16``, ``I``) or float (``F``) grey image, by its
    range: 16-bit values divided by 257 (65535 -> 255), floats in [0, 1] times 255."""
    import numpy as np
    from PIL import Image

    values = np.asarray(img, dtype=np.float64)
    peak = float(values.max()) if values.size else 0.0
    if img.mode.startswith("I;16") or peak > 255:
        values = values / 257.0
    elif img.mode == "F" and peak <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


# Formats vision servers (vLLM, llama-server, OpenAI) all decode; such files within the size limit
# are sent as they are, without decoding and re-encoding.
PASSTHROUGH_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
ORIENTATION = 0x0112  # the EXIF tag: 1 = upright, 6 = turned 90 degrees (a phone held upright)


def image_data_url(image, max_side: int, quality: int = 90) -> str:
    """A ``data:image/jpeg;base64,...`` URL of a PIL image, downscaled so its longest side is at
    most ``max_side`` pixels (aspect ratio kept; never upscaled)."""
    import base64
    import io

    from PIL import Image

    image = to_rgb(image)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_data_url(path: str | Path, max_side: int) -> str:
    """A data URL of an image file: its own bytes when it is a JPEG, PNG or WebP whose longest side
    is within ``max_side`` (header and checksums checked, nothing decoded), else the decoded image
    downscaled and encoded by :func:`image_data_url`.

    Raises:
        InputError: as :func:`load_image` (missing, empty, not an image, truncated, too large).
    """
    import base64

    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as img:
            mime = PASSTHROUGH_FORMATS.get(img.format or "")
            small = max(img.size) <= max_side and img.mode in ("RGB", "L")
            if mime and small:
                img.verify()  # structure and PNG CRCs; a broken file is decoded (and refused) below
                with Image.open(path) as again:  # turned upright (decoded) below unless it is
                    upright = again.getexif().get(ORIENTATION, 1) == 1
                data = path.read_bytes()
                if upright and (img.format != "JPEG" or data.rstrip(b"\0").endswith(b"\xff\xd9")):
                    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    except Exception:  # any problem: the full decode below names it
        pass
    return image_data_url(load_image(path), max_side)
