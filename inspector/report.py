"""Plain-text tables of metrics and verdicts for the terminal, with the words a quality
engineer needs to read them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the tables stay free of the ML stack
    from models.card import ModelCard

LEGEND = (
    "escape = defects not rejected at the threshold that promises the target false-reject rate (lower is "
    "better), [95 % interval over the defective parts the split holds];\nFRR = good parts rejected, measured, "
    "beside its target and the most it may be by chance "
    "(95 % bound);\nAUROC = how well the defect score separates good from defective (1.0 = perfectly); "
    "type-F1 = macro-F1 of the named defect type on defects."
)


def percent(rate: float) -> str:
    """A promise as people write it: 1%, 2.8%, 0.05%."""
    return f"{100 * rate:.3g}%"


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _frr(m: dict) -> str:
    frr = m.get("false_reject_rate")
    if frr is None:
        return "-"
    bound = m.get("frr_bound")
    tail = f" (<={_fmt(bound, True)})" if bound is not None else " (no promise)"
    return f"{_fmt(frr, True)}/{_fmt(m['target_frr'], True)}{tail}"


def _escape(m: dict) -> str:
    esc, lo, hi = m.get("escape_rate"), m.get("escape_low"), m.get("escape_high")
    if esc is None or lo is None or hi is None:
        return _fmt(esc, True)
    return f"{_fmt(esc, True)} [{100 * lo:.0f}-{100 * hi:.0f}%]"


def _escape_auroc(m: dict | None) -> str:
    return "-" if m is None else f"{_fmt(m.get('escape_rate'), True)} / {_fmt(m.get('auroc'))}"


def _table(cols: list[str], rows: list[list[str]], title: str) -> str:
    widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(([title] if title else []) + [line, "-" * len(line), *body])


def metrics_table(metrics: dict[str, dict], title: str = "", legend: bool = False) -> str:
    """The station's decision per product, then each part alone where there are several."""
    cols = ["product", "good/defect", "decided by", "escape", "FRR/target", "AUROC", "type-F1", "pixel AUROC"]
    rows = [
        [
            product,
            f"{m['n'] - m.get('n_defect', 0)}/{m.get('n_defect', 0)}",
            m.get("parts", "-") or "-",
            _escape(m),
            _frr(m),
            _fmt(m.get("auroc")),
            _fmt(m.get("defect_type_macro_f1")),
            _fmt(m.get("pixel_auroc")),
        ]
        for product, m in sorted(metrics.items())
    ]
    out = [_table(cols, rows, title)]
    parts = [(p, m["methods"]) for p, m in sorted(metrics.items()) if len(m.get("methods", {})) > 1]
    if parts:
        cols = ["product"] + [f"{k}: escape / AUROC" for k in ("classifier", "anomaly", "combined")]
        rows = [[p] + [_escape_auroc(ms.get(k)) for k in ("classifier", "anomaly", "combined")] for p, ms in parts]
        out.append(_table(cols, rows, "each part alone (calibrated the same way):"))
    notes = warnings(metrics)
    if notes:
        out.append("\n".join(notes))
    if legend:
        out.append(LEGEND)
    return "\n\n".join(out)


def warnings(metrics: dict[str, dict]) -> list[str]:
    """Plain words where a product breaks its promise or lets many defects through."""
    out = []
    for product, m in sorted(metrics.items()):
        frr, bound, esc = m.get("false_reject_rate"), m.get("frr_bound"), m.get("escape_rate")
        if frr is not None and bound is not None and frr > bound:
            out.append(
                f"! {product}: {frr:.1%} of good parts were rejected, above what the {percent(m['target_frr'])} "
                f"promise allows by chance ({bound:.1%}): the promise did not hold on these parts{_why(m)}"
            )
        elif frr is not None and m.get("guaranteed") is False:
            out.append(f"! {product}: too few good parts to calibrate on{_how_few(m)}: no false-reject promise is made")
        if esc is not None and esc > 0.5:
            out.append(f"! {product}: {esc:.0%} of defects pass at the promised false-reject rate")
    return out


def _how_few(m: dict) -> str:
    """How many good parts set the threshold, and how many its promise would need (1/alpha - 1)."""
    n, need, least = m.get("calibration_parts"), m.get("parts_needed"), m.get("smallest_promise")
    if not n or not need:
        return ""
    backs = f", they back {percent(least)} or more (verdict.target_frr_by_product)" if least else ""
    return f" ({n} parts; a {percent(m['target_frr'])} promise needs {need}{backs})"


def _why(m: dict) -> str:
    """Bad luck or changed parts: how rare the count is, and whether the good parts as a whole
    score above the calibration's."""
    chance, shift = m.get("frr_chance"), m.get("good_shift_p")
    words = []
    if chance is not None:
        # several images per part, and a law that counted them one by one (cards before format 13)
        together = m.get("good_parts", 0) < m["n"] - m.get("n_defect", 0) and not m.get("frr_law_counts_parts")
        words.append(
            f"chance gives this many or more {_odds(chance)}"
            + (" if every image were its own part (a part's images fail together, so more often)" if together else "")
        )
    if shift is not None:
        words.append(
            f"the good parts as a whole score above the calibration's (p = {shift:.2g}): they changed"
            if shift < 0.05
            else f"the good parts as a whole score like the calibration's (p = {shift:.2g}): a few odd parts did it"
        )
    return f";\n  {'; '.join(words)}" if words else ""


def threshold_basis(card: ModelCard, products: list[str] | None = None) -> str:
    """Per product, the good calibration parts its reject threshold stands on and what a review
    that found them defective would change: the one place a person can improve the promise."""
    lines = []
    for product, pc in sorted(card.products.items()):
        if products is not None and product not in products:
            continue
        basis, th = pc.decision.basis, pc.decision.thresholds
        if basis is None or not basis.set_by:
            continue
        parts = ", ".join(f"{_where(p.image)} ({p.score:.2f})" for p in basis.set_by)
        too_few = "the largest score: too few for a promise"
        promise = f"its {percent(th.target_frr)} promise" if th.guaranteed else too_few
        line = f"{product}: reject > {th.reject:.2f} ({promise}) is set by {parts}"
        if basis.reject_without is not None:
            line += f";\n  if they are defective: reject > {basis.reject_without:.2f}"
            if basis.val_escape is not None and basis.val_escape_without is not None:
                line += f", val defects passing {basis.val_escape:.0%} -> {basis.val_escape_without:.0%}"
        lines.append(line)
    if not lines:
        return ""
    head = (
        "what the reject thresholds stand on (good calibration parts; "
        "look at them: one that is in fact defective raises the threshold for every part; relabel it "
        "(inspector relabel, or the dashboard's models page) and retrain)"
    )
    return "\n".join([head, *lines])


def _where(path: str) -> str:
    rel = os.path.relpath(path)
    return rel if not rel.startswith("../../") else path


def _odds(p: float) -> str:
    return "less than 1 time in 1000" if p < 0.001 else f"1 time in {max(1, round(1 / p))}"


def verdict_line(name: str, v) -> str:
    what = v.defect_type or ("defect" if v.verdict != "accept" else "ok")
    flags = f"  [{', '.join(v.flags)}]" if v.flags else ""
    score = f"score {v.defect_score:.2f} (review > {v.warn_threshold:.2f}, reject > {v.reject_threshold:.2f})"
    return f"{v.verdict.upper():6}  {what:16} {v.confidence:4.0%} sure  {score}  {name}{flags}"
