"""Which input a product's memory bank sees: candidate views parsed from its good images' sizes,
near twins left out, and the parts that judge the candidates (never calibration parts)."""

from __future__ import annotations

import hashlib
import re
from statistics import median

import numpy as np
from PIL import Image

from inspector.dataset import CALIBRATION, Dataset, Sample
from inspector.errors import DataError
from models.anomaly import view_shape
from models.card import AnomalyView

MAX_SIZE_RATIO = 16.0  # a good image this many times larger (or smaller) in area than the median is refused
SAME_VIEW = 0.125  # candidate views whose input sides differ by at most this share are one candidate


def parse_candidate(text: str, sizes: list[tuple[int, int]]) -> AnomalyView:
    """'efficientnet_lite0@auto' | '@fit448' | '@scale1.0' | '@scale0.5max800', each optionally
    with '+std' (grey levels standardised per image) -> a view."""
    backbone, _, how = text.partition("@")
    how, plus, extra = (how or "auto").partition("+")
    if plus and extra != "std":
        raise DataError(f"anomaly view '{text}': the only option after '+' is 'std'")
    std = {"standardise": bool(plus)}
    if how == "auto":
        return auto_view(backbone, sizes).model_copy(update=std)
    if m := re.fullmatch(r"fit(\d+)", how):
        return AnomalyView(backbone=backbone, resize="fit", size=int(m.group(1)), **std)
    if m := re.fullmatch(r"scale([\d.]+)(?:max(\d+))?", how):
        return AnomalyView(
            backbone=backbone, resize="scale", scale=float(m.group(1)), size=int(m.group(2) or 1024), **std
        )
    raise DataError(f"anomaly view '{text}': use <extractor>@auto|fit<px>|scale<factor>[max<px>], +std optional")


def distinct_views(views: list[AnomalyView], sizes: list[tuple[int, int]], product: str) -> list[AnomalyView]:
    """The candidates less those that feed the same extractor nearly the same pixels as an earlier one
    (each side within ``SAME_VIEW``, at the product's median image size): building a bank for such a
    twin costs as much as the first and can only differ by chance on val."""
    h, w = int(median(s[0] for s in sizes)), int(median(s[1] for s in sizes))
    kept: list[tuple[AnomalyView, tuple[int, int]]] = []
    for view in views:
        shape = view_shape(h, w, view, 1)
        twin = next((k for k, ks in kept if _same_input(k, view) and _close(ks, shape)), None)
        if twin is None:
            kept.append((view, shape))
        else:
            print(f"{product}: {view.label} left out, nearly the same input as {twin.label}")
    return [v for v, _ in kept]


def _same_input(a: AnomalyView, b: AnomalyView) -> bool:
    return a.backbone == b.backbone and a.standardise == b.standardise


def _close(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return all(abs(x - y) <= SAME_VIEW * max(x, y) for x, y in zip(a, b, strict=True))


def auto_view(backbone: str, sizes: list[tuple[int, int]]) -> AnomalyView:
    """Parts photographed alike (one image size) are fitted to a square near their own size
    (small crops enlarged to 256 px so defects span several grid cells, large ones held to 320: at 448
    px glass bottles were judged no better and cost twice as much; a larger candidate may still win);
    parts whose crops vary in shape keep their shape at native scale (no squeeze)."""
    areas = [h * w for h, w in sizes]
    aspects = [w / h for h, w in sizes]
    if max(areas) <= 1.2 * min(areas) and max(aspects) <= 1.1 * min(aspects):
        side = max(max(h, w) for h, w in sizes)
        return AnomalyView(backbone=backbone, resize="fit", size=int(min(320, max(256, round(side / 32) * 32))))
    longest = median(max(h, w) for h, w in sizes)
    scale = min(1.0, 640 / longest)
    return AnomalyView(backbone=backbone, resize="scale", scale=round(scale, 3), size=int(2 * longest * scale))


def image_sizes(samples: list[Sample]) -> list[tuple[int, int]]:
    """(h, w) from each file's header (no decoding); an unreadable file is named."""
    sizes = []
    for s in samples:
        try:
            with Image.open(s.path) as im:
                sizes.append((im.height, im.width))
        except (OSError, SyntaxError) as exc:
            raise DataError(f"{s.path}: unreadable good image of {s.product} ({exc})") from None
    return sizes


def check_sizes(product: str, samples: list[Sample], sizes: list[tuple[int, int]]) -> None:
    """A good image far larger or smaller than the others is likely another part or camera."""
    areas = np.array([h * w for h, w in sizes], dtype=np.float64)
    mid = float(np.median(areas))
    for s, a, (h, w) in zip(samples, areas, sizes, strict=True):
        if a > MAX_SIZE_RATIO * mid or a * MAX_SIZE_RATIO < mid:
            raise DataError(
                f"{s.path}: {w}x{h} is {a / mid:.3g}x the median area of {product}'s good images; "
                "another part or camera? remove it, or give such parts their own product"
            )


def view_judges(ds: Dataset, product: str, good: list[Sample], most: int) -> tuple[list[Sample], list[Sample]]:
    """(good train parts held out of a candidate's bank in folds, train defect images) that judge a
    view beside val's parts: up to ``most`` of each, by a stable hash (good ones whole units at a time).

    A bank holds good parts only, so the train defects are as new to it as val's, and the held-out
    good parts are scored by banks built without them: the view is judged at the promised rate on
    several hundred parts, not on val's 2-3 tiles per defect type (magnetic-tile) or on the one or two
    largest of ~100 val good scores. Calibration parts judge nothing."""

    def key(tag: str, name: str) -> str:
        return hashlib.sha1(f"{tag}|{name}".encode()).hexdigest()

    calibration = {s.path for s in ds.split(CALIBRATION)}
    units: dict[str, list[Sample]] = {}
    for s in good:
        if s.path not in calibration:
            units.setdefault(s.unit, []).append(s)
    held: list[Sample] = []
    for unit in sorted(units, key=lambda u: key("view-good", u)):
        if len(held) + len(units[unit]) > most:
            break
        held += units[unit]
    defects = [s for s in ds.split("train") if s.product == product and s.is_defect]
    return held, sorted(defects, key=lambda s: key("view", s.path.name))[:most]
