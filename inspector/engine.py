"""The inference engine: images of a product in, verdicts in the manual's words out.

The engine composes the model's parts (``inspector/parts``): each part looks at its own view
of the image and says what it sees (a defect score, class or type probabilities, an anomaly
map); the product's decision in the model card turns those into one defect score, cut by
thresholds calibrated on good parts. One checkpoint serves every product it was built for,
and any product whose manual it is given. Without a manual the verdict says it is image-only.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from inspector.checkpoint import load_model, model_name, resolve_device
from inspector.errors import ManualError, UnknownProductError
from inspector.images import DRAFT_SIZE, load_image
from inspector.manual import Manual, parse_manual
from inspector.parts import TypesOverTurns
from inspector.reference import load_reference
from models.card import Decision, ModelCard
from models.decision import combine, probability, type_probs
from models.drift import image_statistics
from models.inference import available_cores
from models.transforms import resize, to_float
from models.types import PartOutput

_NO_MANUAL = object()
STATS_VIEW = "stats"  # the view image statistics (drift) are computed on
Prepared = dict[str, torch.Tensor]  # part name (or STATS_VIEW) -> uint8 [3, h, w]


@dataclass
class Verdict:
    product: str
    verdict: str  # accept | review | reject
    defect_type: str | None  # the manual's id for the defect, None when accepted or untyped
    confidence: float  # probability of what the verdict says (a good part, or the named defect)
    defect_score: float  # the decision score the thresholds cut
    reason: str  # the manual's section for the defect, quoted, or why it was accepted
    image_only: bool = False
    class_scores: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    warn_threshold: float = 0.0
    reject_threshold: float = 0.0
    classifier_score: float | None = None  # the classifier's P(defect)
    anomaly_score: float | None = None  # the anomaly part's score: distance to the nearest good patch
    attention: np.ndarray | None = field(default=None, repr=False)  # [h, w] where the classifier looked
    anomaly_map: np.ndarray | None = field(default=None, repr=False)  # [h, w]; 1.0 = rejects on its own
    signals: Signals | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("attention", "anomaly_map", "signals"):
            d.pop(k)
        return d


@dataclass
class Signals:
    """What drift checks need of one image (stored beside its inspection)."""

    embedding: np.ndarray | None  # pooled feature in the model's reference projection; None without one
    brightness: float
    contrast: float
    sharpness: float
    width: int
    height: int


class Engine:
    def __init__(
        self, model_dir: Path, device: str = "auto", max_pixels: int = 40_000_000, cache_dir: Path | None = None
    ) -> None:
        self.device = resolve_device(device)
        loaded = load_model(Path(model_dir), self.device, cache_dir)
        self.card: ModelCard = loaded.card
        self.parts = loaded.parts
        self.text = loaded.text
        self.model_dir = Path(model_dir)
        self.max_pixels = max_pixels
        self.reference = load_reference(self.model_dir)
        classifier = self.card.classifier
        self.stats_size = classifier.input_size if classifier else 224
        self.manuals: dict[str, Manual | object] = {}
        self.manual_texts: dict[str, str] = {}  # product -> sha256 of the text last given, parsed or refused
        self.pass_seconds: dict[str, float] = {}  # part -> its last pass: what typing over turns will cost
        self.part_ms: dict[str, float] = {}  # product -> one part's inspection once warm (warm_up)
        self._side_by_side = self._parts_side_by_side()
        for pid, info in self.card.products.items():
            if info.manual:
                self.manuals[pid] = parse_manual(info.manual, f"model card ({pid})", pid)

    @property
    def version(self) -> str:
        return model_name(self.model_dir, self.card)

    def knows(self, product: str) -> bool:
        return product in self.manuals or product in self.card.products

    def set_manual(self, product: str, manual: Manual | None) -> None:
        """Give the engine a product's (new) manual; ``None`` means the product has none."""
        self.manuals[product] = manual if manual is not None else _NO_MANUAL

    def set_manual_text(self, product: str, text: str | None, source: str = "manual") -> None:
        self.manual_texts[product] = hashlib.sha256((text or "").encode()).hexdigest()  # usable or not
        if text is None or not text.strip():
            self.set_manual(product, None)
            return
        try:
            self.set_manual(product, parse_manual(text, source, product))
        except ManualError:
            self.set_manual(product, None)  # an unusable manual must not stop the line: image-only
            raise

    def manual(self, product: str) -> Manual | None:
        m = self.manuals.get(product)
        return m if isinstance(m, Manual) else None

    def defect_types(self, product: str) -> list[str]:
        """The product's defect types in its manual's order (the PLC's result codes 1..N)."""
        if (m := self.manual(product)) is not None:
            return list(m.defects)
        info = self.card.products.get(product)
        return list(info.classes[1:]) if info else []

    def decision(self, product: str, manual: Manual | None) -> tuple[Decision, list[str]]:
        info = self.card.products.get(product)
        if info is None:
            return self.card.fallback, ["uncalibrated: product not in the model, P(defect) > 0.5 rejects"]
        flags = [] if info.decision.thresholds.guaranteed else ["calibrated on too few good parts to promise its FRR"]
        if manual is None:
            return info.image_only, ["image-only", *flags]
        if manual.sha256 != info.manual_sha256:
            flags.append("manual changed since calibration")
        return info.decision, flags

    # -- the station's path: prepare in decode threads, inspect in the model thread ------------------------
    def prepare(self, image: np.ndarray, product: str) -> Prepared:
        """uint8 [H, W, 3] -> each part's view of it. Thread-safe: the service runs it in its decode
        threads, so the inference thread only stacks."""
        views = {name: part.view(image, product) for name, part in self.parts.items() if part.knows(product)}
        c = views.get("classifier")
        views[STATS_VIEW] = c if c is not None and c.shape[-1] == self.stats_size else resize(image, self.stats_size)
        return views

    def warm_up(self) -> float:
        """One inspection per product on a gray image, so the line's first part does not pay for
        the kernels' first-call setup (a 1.6 s first answer misses any PLC's inspect window), then
        three more, timed: ``part_ms``, the median, the least one part takes here once warm (no
        turns). -> s."""
        t0 = time.perf_counter()
        gray = np.full((256, 256, 3), 128, np.uint8)
        for product in self.card.products:
            self.inspect_arrays(product, [gray])
            took = []
            for _ in range(3):
                t1 = time.perf_counter()
                self.inspect_prepared(product, [self.prepare(gray, product)], [(256, 256)], answer_by=t1)
                took.append((time.perf_counter() - t1) * 1000)
            self.part_ms[product] = sorted(took)[1]
        return time.perf_counter() - t0

    def inspect_arrays(self, product: str, images: list[np.ndarray]) -> list[Verdict]:
        """Verdicts for images (uint8 [H, W, 3]) of one product."""
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        return self.inspect_prepared(product, [self.prepare(im, product) for im in images], sizes)

    def _parts_side_by_side(self) -> ThreadPoolExecutor | None:
        """A thread per part where every part's threads fit the cores at once (a station that gave
        the model one thread beside a PLC's handshake): two parts on a core each take 26 ms per
        demo cell where one after the other took 52, and unlike one part split over both cores, a
        part whose core is taken for a moment does not hold up every layer of the other."""
        fits = len(self.parts) * torch.get_num_threads() <= available_cores()
        if self.device.type != "cpu" or len(self.parts) < 2 or not fits:
            return None
        return ThreadPoolExecutor(len(self.parts), thread_name_prefix="part")

    def part_outputs(
        self, product: str, prepared: list[Prepared], manual: Manual | None
    ) -> dict[str, list[PartOutput]]:
        """Every part that knows the product, run on the batch -> part name: one output per image."""

        def run(name: str) -> list[PartOutput]:
            t0 = time.perf_counter()
            out = self.parts[name].run([p[name] for p in prepared], product, manual)
            self.pass_seconds[name] = time.perf_counter() - t0
            return out

        names = [name for name in self.parts if all(name in p for p in prepared)]
        if self._side_by_side is None or len(names) < 2:
            return {name: run(name) for name in names}
        futures = {name: self._side_by_side.submit(run, name) for name in names}
        return {name: f.result() for name, f in futures.items()}

    def inspect_prepared(
        self, product: str, prepared: list[Prepared], sizes: list[tuple[int, int]], answer_by: float | None = None
    ) -> list[Verdict]:
        """Verdicts for a batch from ``prepare``; ``sizes``: each original (w, h). ``answer_by``: the
        ``time.perf_counter()`` by which the verdicts are due (a PLC's inspect window), else None."""
        if not self.knows(product):
            known = sorted(set(self.manuals) | set(self.card.products))
            raise UnknownProductError(f"unknown product '{product}'; known: {', '.join(known)}")
        start = time.perf_counter()
        manual = self.manual(product)
        outputs = self.part_outputs(product, prepared, manual)
        stats = image_statistics(to_float(torch.stack([p[STATS_VIEW] for p in prepared]))).numpy()
        verdicts = self.decide(product, manual, outputs, prepared, answer_by)
        ms = (time.perf_counter() - start) * 1000 / len(prepared)
        pooled = [o.pooled for o in outputs.get("classifier", [])]
        embedding = self.reference.projection(np.stack(pooled)) if self.reference and pooled else None
        for i, (v, (w, h)) in enumerate(zip(verdicts, sizes, strict=True)):
            b, c, sh = map(float, stats[i])
            v.latency_ms = ms
            v.signals = Signals(None if embedding is None else embedding[i], b, c, sh, w, h)
        return verdicts

    # -- from part outputs to verdicts --------------------------------------------------------------------
    def decide(
        self,
        product: str,
        manual: Manual | None,
        outputs: dict[str, list[PartOutput]],
        prepared: list[Prepared] | None = None,
        answer_by: float | None = None,
    ) -> list[Verdict]:
        """``prepared``: the views the outputs came from, for a decision that types over turns
        (without them it types from the view alone). Turning costs a classifier pass per view:
        where those passes would end after ``answer_by``, the parts are typed from the view alone
        and flagged, so that the verdict the line waits for is not made late by its type."""
        if not outputs:
            raise UnknownProductError(f"no part of this model can judge '{product}': onboard it (inspector onboard)")
        decision, flags = self.decision(product, manual)
        n = len(next(iter(outputs.values())))
        raw = {k: np.array([o.scores[k] for o in outs]) for outs in outputs.values() for k in outs[0].scores}
        parts = {k: s for k, s in decision.parts.items() if k in raw}
        if not parts:  # the deciding score is missing (e.g. a bank not built): the classifier, uncalibrated
            decision, flags = self.card.fallback, [*flags, "uncalibrated: no deciding score for this product"]
            parts = {k: s for k, s in decision.parts.items() if k in raw}
        if not parts:
            raise UnknownProductError(f"no part of this model can judge '{product}': onboard it (inspector onboard)")
        if missing := [k for k in decision.parts if k not in parts]:
            # the threshold was set on every deciding score: without one, the largest can only miss
            # defects and the mean moves either way, so the FRR promise no longer covers this verdict
            flags = [*flags, f"uncalibrated: deciding score {'+'.join(missing)} missing, thresholds set with it"]
        score = combine(raw, parts, decision.pooling)
        th = decision.thresholds
        p_defect = probability(score, decision.platt, th.reject, th.warn)
        untyped, turns = np.array([], dtype=int), decision.type_views - 1
        if decision.type_views > 1 and manual is not None and prepared is not None:
            rows = np.flatnonzero(score > th.warn)
            if answer_by is None or time.perf_counter() + turns * self.pass_seconds.get("classifier", 0) <= answer_by:
                self._type_over_turns(product, manual, outputs, prepared, rows, decision.type_views)
            else:
                untyped = rows
        classifier, anomaly = outputs.get("classifier"), outputs.get("anomaly")
        map_ref = self._map_reference(product)
        verdicts = []
        for i in range(n):
            said = {k: outs[i].type_probs for k, outs in outputs.items() if outs[i].type_probs is not None}
            types = type_probs(decision.typing, said)
            types = said.get("classifier") if types is None else types
            v = self._verdict(product, manual, float(score[i]), float(p_defect[i]), types, decision, flags)
            if classifier:  # the classifier's P(defect) this decision reads, else its class softmax's
                named = [k for k in decision.parts if k in classifier[i].scores] or list(classifier[i].scores)
                v.classifier_score = classifier[i].scores[named[0]]
                v.attention = classifier[i].attention
            if anomaly:
                v.anomaly_score = anomaly[i].scores["anomaly"]
                if map_ref:
                    v.anomaly_map = anomaly[i].anomaly_map / map_ref
            if i in untyped:
                v.flags = [*v.flags, f"typed from the view alone: {turns} more passes would miss the window"]
            verdicts.append(v)
        return verdicts

    def _type_over_turns(
        self,
        product: str,
        manual: Manual,
        outputs: dict[str, list[PartOutput]],
        prepared: list[Prepared],
        rows: np.ndarray,
        views: int,
    ) -> None:
        """The classifier's type probabilities of ``rows`` (the parts not accepted: an accepted
        part names no type) replaced by their mean over the first ``views`` of the part's turns
        and mirrors."""
        part, said = self.parts.get("classifier"), outputs.get("classifier")
        if not isinstance(part, TypesOverTurns) or said is None or not len(rows):
            return
        seen = [prepared[i]["classifier"] for i in rows]
        turned = part.turned_types(seen, product, manual, [said[i].type_probs for i in rows], views)
        for i, types in zip(rows, turned, strict=True):
            said[i].type_probs = None if types is None else types.mean(0)

    def _map_reference(self, product: str) -> float | None:
        info = self.card.products.get(product)
        return info.anomaly.map_reference if info is not None and info.anomaly is not None else None

    def _verdict(
        self,
        product: str,
        manual: Manual | None,
        score: float,
        p_defect: float,
        types: np.ndarray | None,
        decision: Decision,
        flags: list[str],
    ) -> Verdict:
        th = decision.thresholds
        band = th.verdict(score)
        named = manual is not None and types is not None and len(types) == len(manual.defects) and len(types) > 0
        class_scores: dict[str, float] = {"ok": round(1 - p_defect, 6)}
        if named:
            class_scores |= {d: round(p_defect * float(t), 6) for d, t in zip(manual.defects, types, strict=True)}
        where = f"defect score {score:.2f}; review above {th.warn:.2f}, reject above {th.reject:.2f}"
        if band == "accept":
            defect, conf, reason = None, 1 - p_defect, f"looks like a good part ({where})"
        elif named:
            top = int(np.argmax(types))
            section = list(manual.defects.values())[top]
            defect, conf, reason = section.name, p_defect * float(types[top]), f"{section.name}: {section.text}"
        else:
            why = f"image-only (no usable manual for '{product}')" if manual is None else "defect type not named"
            defect, conf, reason = None, p_defect, f"{why}: {where}"
        return Verdict(
            product, band, defect, conf, score, reason, manual is None, class_scores, flags,
            warn_threshold=th.warn, reject_threshold=th.reject,
        )  # fmt: skip

    def inspect_files(self, product: str, paths: list[Path], batch_size: int = 16) -> list[Verdict | Exception]:
        """Per file a Verdict, or the error that file raised (the others still get inspected)."""
        results: list[Verdict | Exception] = [None] * len(paths)  # type: ignore[list-item]
        for start in range(0, len(paths), batch_size):
            good, arrays = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    arrays.append(load_image(paths[i], max_pixels=self.max_pixels, draft_size=DRAFT_SIZE))
                    good.append(i)
                except Exception as exc:  # noqa: BLE001 - reported per file, never stops the batch
                    results[i] = exc
            if arrays:
                for i, v in zip(good, self.inspect_arrays(product, arrays), strict=True):
                    results[i] = v
        return results
