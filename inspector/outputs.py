"""Run a model's parts over a split of a dataset and keep what calibration, selection and
evaluation need: per image, every part's raw score, type probabilities and anomaly map.

The parts are the very objects the station runs, fed the same decoded pixels, so the numbers
calibrated and reported here are the station's numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from inspector.anomaly_fit import decode
from inspector.dataset import BadRow, Sample
from inspector.errors import ImageError
from inspector.manual import Manual
from inspector.parts import Part, TypesOverTurns
from models.card import Decision
from models.decision import type_probs


@dataclass
class SplitOutputs:
    """One product's images of one split, and what each part said about them."""

    product: str
    samples: list[Sample]
    target: np.ndarray  # [M] class index into the manual's classes (0 = ok)
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # score name -> [M] raw score
    types: dict[str, np.ndarray] = field(default_factory=dict)  # part -> [M, T] P(type | defective)
    class_probs: np.ndarray | None = None  # [M, C] the classifier's, for accuracy and ECE
    maps: list[np.ndarray] | None = None  # anomaly maps [h, w] per image
    # [M, V, T] the classifier's types on the view and its turns (TURNS); a row never turned holds
    # the view's own V times, which is what the station names for a part it accepts
    turned_types: np.ndarray | None = None

    @property
    def is_defect(self) -> np.ndarray:
        return self.target != 0

    def where(self, rows: np.ndarray) -> SplitOutputs:
        """The same outputs for a subset of rows (a boolean mask)."""
        idx = np.flatnonzero(rows)
        return SplitOutputs(
            self.product,
            [self.samples[i] for i in idx],
            self.target[idx],
            {k: v[idx] for k, v in self.scores.items()},
            {k: v[idx] for k, v in self.types.items()},
            None if self.class_probs is None else self.class_probs[idx],
            None if self.maps is None else [self.maps[i] for i in idx],
            None if self.turned_types is None else self.turned_types[idx],
        )

    def types_for(self, typing: str, views: int = 1) -> np.ndarray | None:
        """P(type | defective) [M, T] as a decision with this ``typing`` names them, the classifier's
        averaged over the first ``views`` of the part's turns and mirrors (they must have been
        collected: the station's types, or none)."""
        if views == 1:
            return type_probs(typing, self.types)
        if self.turned_types is None or self.turned_types.shape[1] < views:
            raise ValueError(f"{self.product}: the decision types over {views} views; collect them (type_views)")
        return type_probs(typing, {**self.types, "classifier": self.turned_types[:, :views].mean(1)})

    def decided_types(self, decision: Decision) -> np.ndarray | None:
        return self.types_for(decision.typing, decision.type_views)


def concat(outputs: list[SplitOutputs]) -> SplitOutputs:
    """One product's outputs from several runs over disjoint samples, in the given order, with the
    scores and type probabilities every run has (a head may have been fitted in some runs only)."""
    first, turned = outputs[0], [o.turned_types for o in outputs]
    return SplitOutputs(
        first.product,
        [s for o in outputs for s in o.samples],
        np.concatenate([o.target for o in outputs]),
        {
            k: np.concatenate([o.scores[k] for o in outputs])
            for k in first.scores
            if all(k in o.scores for o in outputs)
        },
        {k: np.concatenate([o.types[k] for o in outputs]) for k in first.types if all(k in o.types for o in outputs)},
        None if first.class_probs is None else np.concatenate([o.class_probs for o in outputs]),  # type: ignore[misc]
        None if first.maps is None else [m for o in outputs for m in o.maps],  # type: ignore[union-attr]
        None if any(t is None for t in turned) else np.concatenate(turned),  # type: ignore[arg-type]
    )


def collect_cross_fit(
    parts: dict[str, Part],
    folds: list[tuple[frozenset[Path], Part]],
    manual: Manual,
    samples: list[Sample],
    max_pixels: int,
    progress: bool = False,
    bad: list[BadRow] | None = None,
) -> SplitOutputs:
    """Like ``collect`` for the calibration parts, each scored by the anomaly part of its fold
    (a bank built without it); the other parts run as they are."""
    if not folds:
        return collect(parts, manual, samples, max_pixels, progress=progress, bad=bad)
    runs = []
    for held, anomaly in folds:
        fold = [s for s in samples if s.path in held]
        if fold:
            runs.append(collect({**parts, "anomaly": anomaly}, manual, fold, max_pixels, progress=progress, bad=bad))
    missed = {s.path for s in samples} - {p for held, _ in folds for p in held}
    if missed:
        raise ValueError(f"{len(missed)} calibration part(s) of {manual.product} are in no cross-fit fold")
    runs = [r for r in runs if len(r.target)]
    return concat(runs) if runs else collect(parts, manual, [], max_pixels)


def collect(
    parts: dict[str, Part],
    manual: Manual,
    samples: list[Sample],
    max_pixels: int,
    batch_size: int = 16,
    progress: bool = False,
    bad: list[BadRow] | None = None,
) -> SplitOutputs:
    """Every part that knows the product, over ``samples`` of one product (unreadable images
    are left out and reported in ``bad``)."""
    product = manual.product
    use = {k: p for k, p in parts.items() if p.knows(product)}
    kept: list[Sample] = []
    got: dict[str, list] = {k: [] for k in use}
    for chunk, images in _decoded(samples, max_pixels, batch_size, f"score {product}", progress, bad):
        kept += chunk
        for name, part in use.items():
            got[name] += part.run([part.view(im, product) for im in images], product, manual)
    out = SplitOutputs(product, kept, np.array([manual.classes.index(s.defect_type) for s in kept], dtype=np.int64))
    for name, outs in got.items():
        for key in outs[0].scores if outs else []:
            out.scores[key] = np.array([o.scores[key] for o in outs], dtype=np.float64)
        if outs and all(o.type_probs is not None for o in outs):
            out.types[name] = np.stack([o.type_probs for o in outs])
        if outs and outs[0].class_probs is not None:
            out.class_probs = np.stack([o.class_probs for o in outs])
        if outs and outs[0].anomaly_map is not None:
            out.maps = [o.anomaly_map for o in outs]
    return out


def with_turned_types(
    out: SplitOutputs,
    classifier: TypesOverTurns,
    manual: Manual,
    max_pixels: int,
    views: int,
    rows: np.ndarray,
    batch_size: int = 16,
) -> SplitOutputs:
    """``out`` with the classifier's types on ``views`` of the turns and mirrors of the parts in
    ``rows`` (a boolean mask) added; rows turned before keep theirs (``views`` must not exceed
    theirs), the rest hold the view alone. Turning costs ``views`` - 1 passes per part, so only
    the parts whose types are read are turned: val's defects choose the typing, and the station
    turns only the parts it does not accept. The view's own types are the ones ``out`` holds."""
    own = out.types.get("classifier")
    if own is None:
        raise ValueError(f"{out.product}: no classifier types to average over turns")
    if out.turned_types is None:
        turned = np.repeat(own[:, None], views, axis=1)
    elif out.turned_types.shape[1] >= views:
        turned, views = out.turned_types.copy(), out.turned_types.shape[1]
    else:
        raise ValueError(f"{out.product}: turned over {out.turned_types.shape[1]} views before, not {views}")
    idx = np.flatnonzero(rows)
    done = 0
    for chunk, images in _decoded([out.samples[i] for i in idx], max_pixels, batch_size, f"turn {out.product}"):
        at = idx[done : done + len(chunk)]
        if [s.path for s in chunk] != [out.samples[i].path for i in at]:
            raise ValueError(f"{out.product}: images changed while being scored again over turns")
        seen = [classifier.view(im, out.product) for im in images]
        for i, t in zip(at, classifier.turned_types(seen, out.product, manual, list(own[at]), views), strict=True):
            if t is None:
                raise ValueError(f"{out.product}: the classifier named no types for some parts (no manual?)")
            turned[i] = t
        done += len(chunk)
    if done != len(idx):
        raise ValueError(f"{out.product}: images changed while being scored again over turns")
    return replace(out, turned_types=turned)


def _decoded(
    samples: list[Sample],
    max_pixels: int,
    batch_size: int,
    desc: str,
    progress: bool = False,
    bad: list[BadRow] | None = None,
) -> Iterator[tuple[list[Sample], list[np.ndarray]]]:
    """``samples`` decoded in batches, each with the samples it kept (unreadable images are left
    out and reported in ``bad``); batches left empty are skipped."""
    with tqdm(total=len(samples), desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, len(samples), batch_size):
            chunk, images = [], []
            for s in samples[start : start + batch_size]:
                try:
                    images.append(decode(s, max_pixels))
                    chunk.append(s)
                except ImageError as exc:
                    if bad is not None:
                        bad.append(BadRow(str(s.path), str(exc)))
            bar.update(min(batch_size, len(samples) - start))
            if chunk:
                yield chunk, images
