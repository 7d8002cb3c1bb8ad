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
    """Convert any PIL image to RGB, compositing transparency on a white background."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
