"""The fields a line sends with an image, checked at the door: a field the store would refuse
is refused here (422) before the image is accepted, so it can never fail a batch later."""

from __future__ import annotations

import unicodedata

from inspector.store.repo import text_limit

LIMITS = {name: text_limit(name) for name in ("line", "station", "camera", "part_serial")}
LIMITS["product"] = text_limit("product_id")
LIMITS["request_id"] = 128  # not stored as such: it names the inspection id


def field_problem(fields: dict[str, str | None]) -> str | None:
    """-> why the fields cannot be stored, or None. Missing product is the caller's check."""
    for name, limit in LIMITS.items():
        value = fields.get(name)
        if value is None:
            continue
        if len(value) > limit:
            return f"field '{name}' is {len(value)} characters, over the {limit} allowed"
        if any(unicodedata.category(c) == "Cc" for c in value):
            return f"field '{name}' holds a control character (NUL, newline, ...)"
    return None
