"""Where a product's image lands on the anomaly part's input grid."""

from __future__ import annotations

from models.card import AnomalyView


def view_shape(height: int, width: int, view: AnomalyView, multiple: int) -> tuple[int, int]:
    """(h, w) the image of ``height`` x ``width`` is resized to; both multiples of ``multiple``."""

    def snap(v: float) -> int:
        return max(multiple, round(v / multiple) * multiple)

    if view.resize == "fit":
        return snap(view.size), snap(view.size)
    f = view.scale
    longest = max(height, width) * f
    if longest > view.size:  # larger than the bank's parts were seen: shrink, keeping the shape
        f *= view.size / longest
    return snap(height * f), snap(width * f)
