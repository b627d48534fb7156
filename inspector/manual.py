"""Product manuals: Markdown with front matter and one ``### <defect_type>`` section per defect.

The manual is the model's second input: the "Good part" text describes class ``ok`` and each
defect section describes its class, so adding a defect type is writing a section, not code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from inspector.errors import ManualError

_FIELD = re.compile(r"^\s*[-*]\s*(looks like|cause|severity|rule)\s*:\s*(.+)$", re.IGNORECASE)
_DEFECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class DefectSection:
    name: str
    text: str  # the whole section, quoted to operators as the reason for a reject
    looks_like: str = ""
    cause: str = ""
    severity: str = ""
    rule: str = ""

    @property
    def description(self) -> str:
        """What the model reads: the visual description when the section has one."""
        return self.looks_like or self.text


@dataclass(frozen=True)
class Manual:
    product: str
    name: str
    version: str
    overview: str
    good_part: str
    defects: dict[str, DefectSection] = field(default_factory=dict)
    sha256: str = ""
    text: str = ""

    @property
    def classes(self) -> list[str]:
        return ["ok", *self.defects]

    def class_texts(self) -> list[str]:
        """One text per class, ``ok`` first, each naming the product for cross-product context."""
        good = f"{self.name}, good part: {self.good_part or 'no visible defect'}"
        return [good] + [
            f"{self.name}, defect {d.name.replace('_', ' ')}: {d.description}" for d in self.defects.values()
        ]


def _front_matter(text: str, source: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        raise ManualError(f"{source}: front matter opened with '---' but never closed")
    meta = {}
    for line in text[3:end].strip().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            meta[key.strip()] = value.strip()
    return meta, text[end + 4 :]


def _sections(body: str, level: str) -> dict[str, str]:
    """Split ``body`` on headings of exactly ``level`` ('##' or '###') -> {title: text}."""
    out: dict[str, str] = {}
    title, lines = None, []
    for line in body.splitlines():
        m = re.match(rf"^{level}\s+(.+?)\s*#*\s*$", line)
        if m and not line.startswith(level + "#"):
            if title is not None:
                out[title] = "\n".join(lines).strip()
            title, lines = m.group(1), []
        elif title is not None:
            lines.append(line)
    if title is not None:
        out[title] = "\n".join(lines).strip()
    return out


def _defect(name: str, text: str, source: str) -> DefectSection:
    if not _DEFECT_NAME.match(name):
        raise ManualError(f"{source}: defect heading '### {name}' must be a lower-case id like 'pin_hole'")
    fields = {}
    for line in text.splitlines():
        m = _FIELD.match(line)
        if m:
            fields[m.group(1).lower().replace(" ", "_")] = m.group(2).strip()
    return DefectSection(name=name, text=text, **fields)


def parse_manual(text: str, source: str = "manual", product: str | None = None) -> Manual:
    """Parse a manual; raises ManualError naming ``source`` when it has no defect sections."""
    meta, body = _front_matter(text, source)
    h2 = {k.lower(): v for k, v in _sections(body, "##").items()}
    defects_text = h2.get("defects", "")
    defects = {name: _defect(name, t, source) for name, t in _sections(defects_text, "###").items()}
    if not defects:
        raise ManualError(f"{source}: no defect sections (need '## Defects' with one '### <defect_type>' each)")
    if "ok" in defects:
        raise ManualError(f"{source}: 'ok' is reserved for good parts; describe it under '## Good part'")
    title = re.search(r"^#\s+(.+)$", body, re.MULTILINE)
    pid = meta.get("product") or product or ""
    if not pid:
        raise ManualError(f"{source}: no product id (front matter 'product:' or the folder name)")
    overview = "\n\n".join(h2[k] for k in ("product", "inspection on the line") if h2.get(k))
    return Manual(
        product=pid,
        name=meta.get("name") or (title.group(1).strip() if title else pid),
        version=str(meta.get("version", "1")),
        overview=overview,
        good_part=h2.get("good part", ""),
        defects=defects,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        text=text,
    )


def load_manual(path: Path, product: str | None = None) -> Manual:
    path = Path(path)
    if not path.is_file():
        raise ManualError(f"{path}: manual not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManualError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return parse_manual(text, str(path), product or path.parent.name)
