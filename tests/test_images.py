"""Every way an image file can be bad is one clear InputError; good images come back RGB."""

import pytest
from PIL import Image

from pica.errors import InputError
from pica.util.images import MAX_PIXELS, load_image


def write_jpeg(path, size=(64, 48)):
    Image.new("RGB", size, (200, 30, 30)).save(path, "JPEG")
    return path


def test_good_jpeg_and_transparent_png(tmp_path):
    img = load_image(write_jpeg(tmp_path / "a.jpg"))
    assert img.mode == "RGB" and img.size == (64, 48)
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "t.png")
    rgb = load_image(tmp_path / "t.png")
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)  # composited on white


def make_truncated(p):
    data = write_jpeg(p, (256, 256)).read_bytes()
    p.write_bytes(data[: len(data) // 2])


def make_bomb(p):
    # A 1-bit image compresses to almost nothing but declares ~100 megapixels.
    Image.new("1", (10_000, 10_000)).save(p, "PNG")
    assert MAX_PIXELS < 10_000 * 10_000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "image not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not an image"), "not an image"),
        (make_truncated, "truncated or corrupt"),
        (make_bomb, "too large"),
        (lambda p: p.mkdir(), "not a file"),
    ],
)
def test_bad_images(tmp_path, make, message):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_truncation_is_caught_even_if_a_library_made_pil_tolerant(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = tmp_path / "cut.jpg"
    make_truncated(path)
    with pytest.raises(InputError, match="truncated"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global setting is restored
