"""Plain-text tables of metrics and verdicts for the terminal."""

from __future__ import annotations


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def metrics_table(metrics: dict[str, dict], title: str = "") -> str:
    cols = ["product", "n", "accuracy", "macro-F1", "type-F1", "AUROC", "escape", "FRR/target", "ECE"]
    rows = []
    for product, m in sorted(metrics.items()):
        frr = m.get("false_reject_rate")
        rows.append(
            [
                product,
                str(m["n"]),
                _fmt(m["accuracy"]),
                _fmt(m["macro_f1"]),
                _fmt(m.get("defect_type_macro_f1")),
                _fmt(m.get("auroc")),
                _fmt(m.get("escape_rate"), True),
                "-" if frr is None else f"{_fmt(frr, True)}/{_fmt(m['target_frr'], True)}",
                _fmt(m["ece"]),
            ]
        )
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(([title] if title else []) + [line, "-" * len(line), *body])


def verdict_line(name: str, v) -> str:
    what = v.defect_type or ("defect" if v.verdict != "accept" else "ok")
    flags = f"  [{', '.join(v.flags)}]" if v.flags else ""
    return f"{v.verdict.upper():6}  {what:16} conf {v.confidence:.2f}  score {v.defect_score:.3f}  {name}{flags}"
