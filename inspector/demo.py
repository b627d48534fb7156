"""Demo data that any machine has: real electroluminescence images of solar cells from the
``elpv-dataset`` PyPI package (Buerhop-Lutz, Deitsch et al., CC BY-NC-SA 4.0), written out in
the manifest layout with the manuals in ``inspector/demo_manuals``.

Expert labels are defect probabilities: 0 -> ok, 1/3 -> suspect_damage, 2/3 and 1 -> cell_damage.
Splits are a stable hash of the file name (70/15/15).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import shutil
from pathlib import Path

from sqlalchemy import select

from inspector.dataset import hash_split
from inspector.errors import DataError
from inspector.report import percent
from inspector.store.rows import DriftEventRow

MANUALS = Path(__file__).parent / "demo_manuals"
PRODUCTS = {"mono": "solar-cell-mono", "poly": "solar-cell-poly"}
LINE_PARTS = 40  # held-out cells per product the simulated line inspects (the drift window needs 30)
# a miniature shift of 80 cells: a tenth of the accepted ones are spot-checked (a line's 0.5 % would pick none)
LINE_SPOT_CHECKS = 0.1


def _label(probability: float) -> str:
    if probability < 0.1:
        return "ok"
    return "suspect_damage" if probability < 0.5 else "cell_damage"


def elpv_root() -> Path:
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("demo data needs the PyPI package 'elpv-dataset' (pip install elpv-dataset)")
    return Path(spec.submodule_search_locations[0]) / "data"


def build_demo(dest: Path, per_class: int | None = None) -> Path:
    """Write the demo products under ``dest`` (idempotent) and return it.

    ``per_class`` caps images per (product, class) for a quicker demo; None keeps all 2,624.
    """
    src = elpv_root()
    rows = []
    for line in (src / "labels.csv").read_text().splitlines():
        if line.strip():
            path, prob, kind = line.split()
            rows.append((path, float(prob), kind))
    seen: dict[tuple[str, str], int] = {}
    manifests: dict[str, list[dict]] = {p: [] for p in PRODUCTS.values()}
    for path, prob, kind in sorted(rows):
        product, label = PRODUCTS[kind], _label(prob)
        n = seen.get((product, label), 0)
        if per_class is not None and n >= per_class:
            continue
        seen[(product, label)] = n + 1
        name = Path(path).name
        rel = f"images/{label}/{name}"
        target = dest / product / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / path, target)
        manifests[product].append(
            {
                "image": rel,
                "product": product,
                "label": "ok" if label == "ok" else "defect",
                "defect_type": label,
                "split": hash_split(name),
                "mask": "",
                "source": f"elpv-dataset/{path} p={prob:.2f}",
            }
        )
    for product, items in manifests.items():
        folder = dest / product
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MANUALS / f"{product}.md", folder / "manual.md")
        with open(folder / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["image", "product", "label", "defect_type", "split", "mask", "source"])
            w.writeheader()
            w.writerows(items)
    return dest


def run_demo(settings, per_class: int | None = None, progress: bool = True) -> int:
    """Build the demo data, train, print val/test metrics, then replay held-out cells as a line."""
    from inspector.dataset import load_dataset
    from inspector.report import metrics_table, threshold_basis
    from inspector.service.app import build_service
    from inspector.service.replay import replay, running
    from inspector.store.session import session_factory
    from inspector.training import train_model

    data = build_demo(settings.home / "demo", per_class)
    print(f"demo data: {data} (elpv-dataset: electroluminescence images of solar cells)")
    out = settings.default_model
    card = train_model(settings, [data], out, progress=progress)
    print(metrics_table(card.metrics["val"], "\nval (chose the epoch, parts and scales; not the thresholds)"))
    print(metrics_table(card.metrics["test"], "\ntest (held out)", legend=True))
    if basis := threshold_basis(card):
        print(f"\n{basis}")
    print(f"\nmodel saved to {out}")
    print("\nsimulated line: held-out cells posted to the station at 8 per second")
    verdict = settings.verdict.model_copy(update={"spot_check_share": LINE_SPOT_CHECKS})
    service = build_service(settings.model_copy(update={"verdict": verdict}), out, max_batch=8, max_wait_ms=20)
    test = load_dataset([data]).split("test")
    # enough parts per product for the drift check's window, in a stable mixed order
    parts = []
    for s in sorted(test, key=lambda s: hashlib.sha1(s.path.name.encode()).hexdigest()):
        if sum(product == s.product for product, _ in parts) < LINE_PARTS:
            parts.append((s.product, s.path))
    truth = {s.path: s.defect_type for s in test}

    # the verdict is the defect score against the threshold that keeps the false-reject promise;
    # a rejected part's defect type comes with its probability
    print(f"  {'verdict':8} {'score vs reject threshold':26} {'named (probability)':22} {'truth':15} image")

    def show(path, answer: dict) -> None:
        score, cut = answer.get("defect_score"), answer.get("reject_threshold")
        against = f"{score:.2f} ({'>' if score > cut else '<='} {cut:.2f})" if score is not None and cut else ""
        named = answer.get("error") or ""
        if answer.get("defect_type"):
            named = f"{answer['defect_type']} ({answer.get('confidence') or 0:.0%})"
        print(f"  {answer['verdict']:8} {against:26} {named[:22]:22} {truth[path]:15} {path.name}")

    with running(service) as url:
        answers = replay(url, parts, rate=8, on_result=show)
    sessions = session_factory(service.db_engine)
    with sessions() as s:
        accounts = demo_users(s)
        s.commit()
    after_the_line(settings, sessions, [(path, a) for (_, path), a in zip(parts, answers, strict=True)], truth)
    service.db_engine.dispose()
    print(f"\nverdicts and images recorded in {settings.database_url} and {settings.images_dir}")
    print("\ndashboard users (new passwords on every demo run; `inspector users add` makes real ones):")
    for name, (role, password) in accounts.items():
        print(f"  {name:9} {password}   ({role})")
    home = settings.home
    print(
        "\nnext:\n"
        f"  inspector inspect --home {home} --product solar-cell-mono {data}/solar-cell-mono/images/cell_damage/*.png\n"
        f"  inspector eval --home {home} --data {data} --json {home}/eval.json\n"
        f"  inspector serve --home {home}    # the station: POST images to http://127.0.0.1:8080/v1/inspect\n"
        f"  inspector-dashboard --home {home}    # the dashboard on http://localhost:8501"
    )
    return 0


def after_the_line(settings, sessions, answered: list[tuple[Path, dict]], truth: dict[Path, str]) -> None:
    """What a shift leaves for the dashboard, in miniature: the operator reviews every part the
    line rejected or sent to review, and the spot checks (the demo takes the cells' expert labels
    as the operator's word), one drift check runs, and one retraining run decides on those reviews."""
    from inspector.drift import run_drift_check
    from inspector.retrain import run_retrain
    from inspector.services import current, review
    from inspector.store import Inspection

    with sessions() as s:
        operator = current(s, "operator")
        stored = s.execute(
            select(Inspection.uuid, Inspection.id, Inspection.spot_check).where(
                Inspection.uuid.in_([a["inspection_id"] for _, a in answered])
            )
        ).all()
        ids, spot = {u: i for u, i, _ in stored}, {u for u, _, checked in stored if checked}
        flagged = [(p, a["inspection_id"]) for p, a in answered if a["verdict"] in ("review", "reject")]
        checked = [(p, a["inspection_id"]) for p, a in answered if a["inspection_id"] in spot]
        for path, uuid in flagged + checked:
            label = "ok" if truth[path] == "ok" else "defect"
            review(s, operator, ids[uuid], label, None if label == "ok" else truth[path], "demo: the expert label")
        n = len(flagged) + len(checked)
        shipped = sum(truth[p] != "ok" for p, _ in checked)
        s.commit()
        events = run_drift_check(s, settings.drift)
    alarms = [e for e in events if e.severity != "ok"]
    print(
        f"\noperator reviews: {len(flagged)} parts the line rejected or sent to review, and {len(checked)} spot checks "
        f"(accepted parts picked at random; {shipped} found defective)"
    )
    if not events:
        print(f"drift check: nothing to check yet: no stream has {settings.drift.min_window} inspections")
    else:
        print(
            f"drift check: {len(events)} metrics checked, {len(alarms)} above threshold"
            + "".join(f"\n  {e.severity:5} {e.product_id}/{e.line} {e.metric}" for e in alarms)
        )
        for line in on_the_line(events):
            print(line)
    print("retraining: a challenger learns from those reviews and is promoted only if measurably better ...")
    run = run_retrain(settings, sessions, trigger=f"demo: {n} operator reviews", actor="engineer")
    if run.status == "finished":
        verdict = "promoted" if run.promoted else "kept as a candidate, the champion stays"
        print(f"  challenger #{run.challenger} {verdict}: {run.reason}")
        print("  took " + ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items()))
    else:
        print(f"  retraining {run.status}: {run.reason}")


def on_the_line(events: list[DriftEventRow]) -> list[str]:
    """The drift check's two measurements of the promise and the escape on the line, in words."""
    out = []
    for e in events:
        d = e.details
        where = f"{e.product_id}/{e.line}"
        if e.metric == "false_reject_promise":
            out.append(
                f"  {where}: good parts rejected >= {e.value:.1%} ({d['false_rejects']} of {d['reviewed_rejects']} "
                f"reviewed rejects were good; promised {percent(d['promised'])}): {e.severity}"
            )
        elif e.metric == "escape_on_line":
            out.append(
                f"  {where}: defects shipped ~ {e.value:.0%} ({d['shipped_defects']} of "
                f"{d['reviewed_spot_checks']} spot checks defective; the test split's model accepted "
                f"{d['test_escape']:.0%}): {e.severity}"
            )
    return out


def demo_users(session) -> dict[str, tuple[str, str]]:
    """An operator and an engineer with fresh random passwords. -> name: (role, password)."""
    import secrets

    from inspector.services import create_user

    accounts = {"operator": ("operator", secrets.token_urlsafe(9)), "engineer": ("engineer", secrets.token_urlsafe(9))}
    for name, (role, password) in accounts.items():
        create_user(session, name, password, role)
    return accounts
