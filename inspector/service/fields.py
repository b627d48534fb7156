"""The fields a line sends with an image, checked at the door: a field the store would refuse
is refused here (422) before the image is accepted, so it can never fail a batch later."""

from __future__ import annotations

import unicodedata

# the store's column widths (inspector/store/inspections.py)
LIMITS = {"product": 64, "line": 64, "station": 64, "camera": 64, "part_serial": 128, "request_id": 128}


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
