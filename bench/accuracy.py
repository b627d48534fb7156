"""Accuracy benchmark: every fusion vs image-only (manual ablated) vs a logistic-regression
baseline, mean ± std over seeds, on each product's held-out test split; plus a low-data table.

Thresholds and early stopping use val only; test is touched once per trained model.
Writes docs/RESULTS.md and docs/results.json and prints the JSON.

    python bench/accuracy.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.settings import Settings
from inspector.training import prepare, train_model
from models import calibrate_thresholds, list_fusions, product_metrics

KEYS = ["macro_f1", "defect_type_macro_f1", "auroc", "escape_rate", "false_reject_rate", "ece"]
LOW_DATA_PRODUCTS = ["magnetic-tile", "pcb"]


def logistic_baseline(prep, settings: Settings) -> dict:
    """Per product: logistic regression on frozen pooled features, C picked on val macro-F1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    splits = {}
    for split in ("train", "val", "test"):
        fs, kept = prep.features(prep.ds.split(split), 1, False)
        splits[split] = (fs.views[0].pooled.float().numpy(), fs.target.numpy(), np.array([s.product for s in kept]))
    out = {}
    for m in prep.manuals:
        get = {k: (x[p == m.product], y[p == m.product]) for k, (x, y, p) in splits.items()}
        (xtr, ytr), (xva, yva), (xte, yte) = get["train"], get["val"], get["test"]
        if len(set(ytr.tolist())) < 2:
            continue  # a good-only product (glass-bottle): nothing for a supervised baseline to learn
        scaler = StandardScaler().fit(xtr)
        best = None
        for c in (0.01, 0.1, 1.0):
            clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(scaler.transform(xtr), ytr)
            f1 = f1_score(yva, clf.predict(scaler.transform(xva)), average="macro")
            if best is None or f1 > best[0]:
                best = (f1, clf)
        clf, n_classes = best[1], len(m.classes)

        def probs(x, clf=clf, scaler=scaler, n=n_classes):
            p = np.zeros((len(x), n))
            p[:, clf.classes_] = clf.predict_proba(scaler.transform(x))
            return p

        pva, pte = probs(xva), probs(xte)
        v = settings.verdict
        th = calibrate_thresholds(1 - pva[yva == 0, 0], v.target_frr, v.warn_frr) if (yva == 0).any() else None
        reject, warn = (th.reject, th.warn) if th else (0.5, 0.3)
        out[m.product] = product_metrics(m.classes, yte, pte, 1 - pte[:, 0], reject, warn, v.target_frr)
    return out


def summarise(runs: list[dict]) -> dict:
    """[{product: metrics}] over seeds -> {product: {key: [mean, std, n]}}."""
    out: dict = {}
    for product in runs[0]:
        out[product] = {}
        for k in KEYS:
            vals = [r[product][k] for r in runs if k in r.get(product, {})]
            if vals:
                out[product][k] = [float(np.mean(vals)), float(np.std(vals)), len(vals)]
    return out


def fmt(cell) -> str:
    if cell is None:
        return "–"
    mean, std, n = cell
    return f"{mean:.3f}" if n == 1 or std == 0 else f"{mean:.3f} ± {std:.3f}"


def markdown(result: dict) -> str:
    lines = [
        "# Results",
        "",
        f"Produced by `{result['command']}` on {result['machine']} in {result['wall_minutes']:.0f} min "
        f"({result['date']}). Mode: **{result['mode']}** backbone ({result['backbone']}, features cached), "
        f"text encoder {result['text_encoder']}. Every number is on the **test** split of `../shared/data`; "
        "early stopping, temperature scaling and verdict thresholds used val only. "
        f"Mean ± std over seeds {result['seeds']}. One model is trained on all products at once.",
        "",
        "Columns: macro-F1 over all classes; type-F1 = macro-F1 of the defect type on defect images; AUROC of "
        "the defect score, ok vs defect; escape = defects not rejected at the val-calibrated threshold for "
        f"{result['target_frr']:.0%} false rejects; FRR = measured false-reject rate of test good parts (target "
        f"{result['target_frr']:.0%}); ECE = expected calibration error of the class probabilities.",
        "",
    ]
    for product in result["products"]:
        lines += [
            f"## {product}",
            "",
            "| method | macro-F1 | type-F1 | AUROC | escape | FRR | ECE |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, table in result["methods"].items():
            row = table.get(product, {})
            lines.append(f"| {method} | " + " | ".join(fmt(row.get(k)) for k in KEYS) + " |")
        lines.append("")
    if result.get("low_data"):
        lines += [
            "## Low data: fused vs image-only",
            "",
            "Train images per (product, class) capped at N (sampled from train per seed); one model on all "
            "products; test macro-F1.",
            "",
            "| product | N | fused (manual) | image-only (ids) | gain |",
            "|---|---|---|---|---|",
        ]
        for row in result["low_data"]:
            lines.append(
                f"| {row['product']} | {row['shots']} | {fmt(row['fused'])} | {fmt(row['image_only'])} | "
                f"{row['fused'][0] - row['image_only'][0]:+.3f} |"
            )
        lines.append("")
    if result.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--home", type=Path, default=Path("var"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fusions", nargs="+", default=list_fusions())
    ap.add_argument("--shots", type=int, nargs="*", default=[5, 20])
    ap.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"))
    ap.add_argument("--json", type=Path, default=Path("docs/results.json"))
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}: this benchmark needs ../shared/data")
    start = time.time()
    torch.set_num_threads(2)
    base = Settings(home=args.home)
    preps = {
        src: prepare(base.model_copy(update={"model": base.model.model_copy(update={"text_source": src})}), [args.data])
        for src in ("manual", "ids")
    }

    def run(fusion: str, source: str, seed: int, shots: int | None = None) -> dict:
        s = base.model_copy(deep=True)
        s.model.fusion, s.model.text_source, s.train.seed = fusion, source, seed
        t = time.time()
        card = train_model(s, [args.data], None, shots=shots, progress=False, prepared=preps[source])
        print(
            f"  {fusion:16} {source:6} seed {seed} shots {shots}: {time.time() - t:.0f}s, "
            f"best epoch {card['train']['best_epoch']}",
            file=sys.stderr,
            flush=True,
        )
        return card["metrics"]["test"]

    methods: dict[str, list[dict]] = {}
    for fusion in args.fusions:
        methods[f"fused: {fusion}"] = [run(fusion, "manual", seed) for seed in args.seeds]
    methods["image-only (manual ablated, cross_attention)"] = [run("cross_attention", "ids", s) for s in args.seeds]
    methods["logistic regression on frozen features"] = [logistic_baseline(preps["manual"], base)]
    low = []
    for shots in args.shots:
        fused = [run("cross_attention", "manual", s, shots) for s in args.seeds]
        image_only = [run("cross_attention", "ids", s, shots) for s in args.seeds]
        fs, io = summarise(fused), summarise(image_only)
        for product in LOW_DATA_PRODUCTS:
            low.append(
                {
                    "product": product,
                    "shots": shots,
                    "fused": fs[product]["macro_f1"],
                    "image_only": io[product]["macro_f1"],
                }
            )
    result = {
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "mode": "frozen",
        "backbone": base.model.backbone,
        "text_encoder": base.model.text_encoder,
        "seeds": args.seeds,
        "target_frr": base.verdict.target_frr,
        "wall_minutes": (time.time() - start) / 60,
        "products": [m.product for m in preps["manual"].manuals],
        "methods": {k: summarise(v) for k, v in methods.items()},
        "low_data": low,
        "raw": methods,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    args.out.write_text(markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=2))


if __name__ == "__main__":
    main()
