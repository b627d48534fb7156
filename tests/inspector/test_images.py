"""Bad images from a line: each normalised or refused with one line naming the input."""

import io

import numpy as np
import pytest
from PIL import Image

from inspector.errors import ImageError
from inspector.images import load_image


def save(tmp_path, name, img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    (tmp_path / name).write_bytes(buf.getvalue())
    return buf.getvalue()


def test_grayscale_rgba_and_16bit_become_rgb8(tmp_path):
    save(tmp_path, "g.png", Image.fromarray(np.full((20, 30), 77, np.uint8)))
    g = load_image(tmp_path / "g.png")
    assert g.shape == (20, 30, 3) and g.dtype == np.uint8 and (g == 77).all()

    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[:10, :, 3] = 0  # transparent half
    save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA"))
    a = load_image(tmp_path / "a.png")
    assert a.shape == (20, 20, 3) and a[15, 0, 0] == 200 and a[0, 0, 0] == 0

    deep = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 100).astype(np.uint16)
    save(tmp_path, "d.png", Image.fromarray(deep))  # 16-bit grayscale PNG
    d = load_image(tmp_path / "d.png")
    assert d.dtype == np.uint8 and d.min() == 0 and d.max() == 255


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
    ],
)
def test_empty_and_garbage(tmp_path, content, message):
    (tmp_path / "x.jpg").write_bytes(content)
    with pytest.raises(ImageError, match=message) as err:
        load_image(tmp_path / "x.jpg")
    assert str(tmp_path / "x.jpg") in str(err.value) and "\n" not in str(err.value)


def test_truncated_jpeg(tmp_path):
    data = save(
        tmp_path,
        "full.jpg",
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
        "JPEG",
    )
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg: corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_fifty_megapixel_image_is_refused_before_decoding(tmp_path):
    save(tmp_path, "huge.png", Image.new("L", (10_000, 5_000)))
    with pytest.raises(ImageError, match="huge.png: 10000x5000 is 50 MP, over the 40 MP limit"):
        load_image(tmp_path / "huge.png")


def test_bytes_and_missing_file(tmp_path):
    data = save(tmp_path, "ok.png", Image.new("RGB", (16, 16), (1, 2, 3)))
    assert load_image(data, name="upload").shape == (16, 16, 3)
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_exif_orientation_is_applied(tmp_path):
    """A camera that rotates by tag: the part is inspected the way it was seen (issue #14, item 7)."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue(), name="rotated.jpg")
    assert out.shape == (40, 20, 3)  # portrait, as displayed
    assert out[:15].mean() > 200 and out[25:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_multi_frame_images_are_refused_not_cut_to_their_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (16, 16), (v, v, v)) for v in (0, 128, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=f"anim: {fmt} with 3 frames; send one frame per image"):
        load_image(buf.getvalue(), name="anim")
    one = io.BytesIO()
    frames[1].save(one, fmt)
    assert load_image(one.getvalue(), name="still").shape == (16, 16, 3)
