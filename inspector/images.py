"""Decode an image from a line into uint8 RGB, or fail with one clear line.

Cameras send grayscale, 16-bit, RGBA or huge frames; files get truncated in transit. Each is
either normalised here or refused with an ImageError naming the input, never a deep traceback.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated frame is refused, not silently padded with gray

from inspector.errors import ImageError  # noqa: E402

DEFAULT_MAX_PIXELS = 40_000_000
# JPEGs over twice this decode at reduced scale (4-8x faster); training and serving both do it,
# so the model always sees the pixels it learned from
DRAFT_SIZE = 1024


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)  # stretch the sensor's range to 8 bits
        return np.repeat(a.astype(np.uint8)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))  # transparent = no part = black
        img = Image.alpha_composite(background, img)
    return np.array(img.convert("RGB"))  # writable: torch warns on read-only buffers


def load_image(
    source: str | Path | bytes, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int = 0
) -> np.ndarray:
    """-> uint8 [H, W, 3]. ``draft_size`` lets JPEG decode at reduced scale (fast, for models)."""
    label = name or (f"{len(source)}-byte upload" if isinstance(source, bytes) else str(source))
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageError(f"{label}: empty image")
            fp = io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{label}: file not found")
            if path.stat().st_size == 0:
                raise ImageError(f"{label}: empty file")
            fp = open(path, "rb")
        with fp, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(
                        f"{label}: {w}x{h} is {w * h / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit"
                    )
                if w < 8 or h < 8:
                    raise ImageError(f"{label}: {w}x{h} is too small to inspect")
                frames = getattr(img, "n_frames", 1)
                # an MPO (phone/stereo JPEG) carries its primary picture first, by the standard; any other
                # multi-frame file is ambiguous: which frame is the part? refuse rather than guess the first
                if frames > 1 and img.format != "MPO":
                    raise ImageError(f"{label}: {img.format} with {frames} frames; send one frame per image")
                if draft_size and img.format in ("JPEG", "MPO"):
                    img.draft("RGB", (draft_size, draft_size))
                img.load()
                # cameras and phones that rotate by EXIF tag: inspect the part the way it was seen
                return _to_rgb8(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{label}: not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{label}: corrupt or truncated image ({exc})") from None
