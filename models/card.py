"""The model card: what a checkpoint holds and how its scores become verdicts.

Typed and versioned: ``load_card`` validates a card on load, upgrades an older format it
knows, and refuses anything else with one line naming the file and the problem. Everything
that reads a model reads it through these types, never through string keys of a dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.calibration import Thresholds
from models.inference import Precision
from models.types import FusionConfig

# 3: an anomaly view may standardise grey levels; 4: a decision may pool its scores by their mean;
# 5: it may take the defect type from both parts; 6: a segmentation head may be taught by labels only
# 7: a decision names the calibration parts its reject threshold stands on; 8: several classifier
# heads; 9: the classifier's numerics (bf16 or float32), which it keeps on any device; 10: a decision
# may name defect types from the classifier over the part's mirrors; 11: over its turns too (type_views);
# 12: an anomaly view names its extractor's numerics (bf16 or float32), kept on any device;
# 13: thresholds name the physical parts their good images show (the promise counts parts)
# (an older inspector must refuse each, not score the old way)
CARD_FORMAT = 13


class CardError(ValueError):
    """A card that cannot be used; the message is one line naming the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ClassifierSpec(_Strict):
    """The cross-modal classifier: image encoder, text encoder, fusion, and its temperatures."""

    backbone: str
    input_size: int = Field(gt=0)
    mode: Literal["frozen", "finetune"] = "frozen"
    trainable_stages: int = 0
    fusion: FusionConfig
    class_temperature: float = 1.0
    defect_temperature: float = 1.0
    members: int = Field(1, ge=1)  # heads trained from different seeds, their probabilities averaged
    # the numerics its temperatures and thresholds were fitted with; it runs with them on any device
    precision: Precision = "float32"


class AnomalyView(_Strict):
    """How one product's images become the anomaly part's input.

    ``fit``: resized to a ``size`` x ``size`` square (parts photographed the same way every time).
    ``scale``: the aspect ratio kept, the pixels scaled by ``scale`` and the longest side held to
    ``size`` (parts whose crops vary in shape, e.g. magnetic tiles); never a silent squeeze.
    ``standardise``: each image's grey levels brought to one mean and spread before the bank sees
    them, for parts whose exposure varies from part to part: the bank then stores texture, not
    exposure (opt-in: on the shared data val never preferred it, docs/RESULTS.md).
    ``precision``: the numerics the backbone extracted its bank's and calibration's features in;
    the station extracts in them too, on any device, as its thresholds hold only for those.
    """

    backbone: str = "efficientnet_lite0"
    resize: Literal["fit", "scale"] = "fit"
    size: int = Field(448, ge=32, le=4096)
    scale: float = Field(1.0, gt=0, le=4)
    standardise: bool = False
    precision: Precision = "float32"

    @property
    def label(self) -> str:
        how = f"fit{self.size}" if self.resize == "fit" else f"scale{self.scale:g}max{self.size}"
        return f"{self.backbone}@{how}" + ("+std" if self.standardise else "")


class SegmentationSpec(_Strict):
    """A product's segmentation head as trained (models/anomaly/segmentation.py)."""

    masked: int  # defect train images it learnt from (their masks, or their labels only)
    good: int  # good train images it learnt from
    steps: int
    seconds: float = 0.0
    # "labels": taught without masks, it scores the part but says not where (the map stays the bank's)
    taught_by: Literal["masks", "labels"] = "masks"


class AnomalySpec(_Strict):
    """A product's memory bank as built, and its segmentation head where it has masks."""

    view: AnomalyView
    bank_patches: int
    bank_images: int
    build_seconds: float = 0.0
    selected_on: str = ""  # why this view (val scores of the candidates)
    # the map's value that good parts exceed at the target false-reject rate (calibration split):
    # maps are stored relative to it, so 1.0 on a heatmap means "as strong as 1 % of good parts reach"
    map_reference: float | None = None
    segmentation: SegmentationSpec | None = None  # taught by masks, the stored map is its P(defect) per region

    @property
    def map_from_segmentation(self) -> bool:
        """Whether the stored map is the segmentation head's (it learnt where defects are) or the bank's."""
        return self.segmentation is not None and self.segmentation.taught_by == "masks"


class PartScale(_Strict):
    """Puts one named score on the common decision scale: ``(f(score) - center) / spread``,
    with f the identity or the logit (probabilities pile up near 1; their logits keep spreading)."""

    transform: Literal["identity", "logit"] = "identity"
    center: float = 0.0
    spread: float = Field(1.0, gt=0)


class ThresholdSetter(_Strict):
    """A good calibration image at or above the reject threshold."""

    image: str  # the path the training data gave
    part: str  # its physical part: a tile's lightings are one part, and a review judges the part
    score: float  # on the decision's scale


class ThresholdBasis(_Strict):
    """What the 1 % promise stands on, for an engineer to look at before trusting it.

    With a few hundred calibration parts the reject threshold is their second or third largest
    score, so one good-labelled part that looks damaged (a marked tile, a cell the expert passed)
    sets it, and every defect that scores below that part passes. Training cannot tell such a
    part from a good one; a person looking at it can. ``reject_without`` is the threshold if a
    review finds those parts defective (relabel them and retrain to get it); ``val_escape`` and
    ``val_escape_without`` say what that would change on val, which chose the parts and scales
    but never the threshold.
    """

    set_by: list[ThresholdSetter]  # without a promise: the part with the largest score, which is the threshold
    reject_without: float | None = None  # None: no promise with them gone (or none to begin with)
    val_escape: float | None = None
    val_escape_without: float | None = None


# over how many of a part's views the classifier's type probabilities are averaged: the view
# alone, with its three mirrors, or with all its right-angle turns and mirrors (TURNS' order)
TypeViews = Literal[1, 4, 8]
TYPE_VIEWS: tuple[int, ...] = get_args(TypeViews)
VIEWS_SAID = {1: "", 4: " over mirrors", 8: " over turns and mirrors"}


class Decision(_Strict):
    """How a product's part scores become one defect score, and where its verdict bands lie.

    The defect score is the largest scaled score of the deciding parts, so strong evidence from
    any one part fails the part (a defect type the classifier never saw still shows as an
    anomaly), or their mean where val showed beyond chance that parts which each see a defect
    a little fail it together more often. Thresholds are conformal quantiles of that score on
    calibration good parts.
    """

    parts: dict[str, PartScale]  # score name ("classifier", "defect_head", "anomaly", "segmentation") -> its scale
    thresholds: Thresholds
    pooling: Literal["max", "mean"] = "max"  # how the scaled scores of the parts become one
    # which part names the defect type; "both": the mean of the two parts' type probabilities
    typing: Literal["classifier", "anomaly", "both"] = "classifier"
    # how many of the view's right-angle turns and mirrors the classifier's type probabilities are
    # averaged over, where val named its defects better so: 1 the view alone, 4 the view and its
    # three mirrors, 8 all its turns and mirrors; run only for parts not accepted
    type_views: TypeViews = 1
    platt: tuple[float, float] | None = None  # P(defect) = sigmoid(a * score + b), fitted on val
    calibrated_on: str = ""
    selected_on: str = ""
    basis: ThresholdBasis | None = None  # the calibration parts the reject threshold stands on


class ProductCard(_Strict):
    name: str
    classes: list[str]
    manual_sha256: str
    manual_version: str = ""
    manual: str = ""
    decision: Decision  # with the product's manual
    image_only: Decision  # without a usable manual
    anomaly: AnomalySpec | None = None


class ModelCard(_Strict):
    format: int = CARD_FORMAT
    created_at: str
    text_encoder: str = "minilm_l6"  # embeds the manuals' class descriptions for every part that reads them
    text_source: Literal["manual", "ids"] = "manual"  # "ids": the manual ablated (fixed vectors per class)
    classifier: ClassifierSpec | None = None
    anomaly_backbones: list[str] = []  # patch extractors the products' banks were built with
    type_heads: list[str] = []  # backbones with a region type head
    products: dict[str, ProductCard]
    fallback: Decision  # a product the model was not calibrated for (given only its manual)
    verdict: dict[str, Any] = {}
    data: dict[str, Any] = {}
    train: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    versions: dict[str, str] = {}

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)

    def summary(self) -> dict[str, Any]:
        """The card without the manuals' text: what the store keeps per model version. The
        products' decisions stay, so the dashboard can say what each promise stands on."""
        return self.model_dump(mode="json", exclude={"products": {"__all__": {"manual"}}})


def _upgrade_1(d: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (classifier only): its thresholds cut the classifier's P(defect) directly."""
    cal = d["calibration"]

    def decision(th: dict, calibrated_on: str = "", parts: tuple[str, ...] = ("classifier",)) -> dict:
        return {"parts": {p: {} for p in parts}, "thresholds": th, "calibrated_on": calibrated_on}

    return {
        "format": 2,
        "created_at": d["created_at"],
        "text_encoder": d["text_encoder"],
        "text_source": d.get("text_source", "manual"),
        "classifier": {
            "backbone": d["backbone"],
            "input_size": d["input_size"],
            "mode": d.get("mode", "frozen"),
            "trainable_stages": d.get("trainable_stages", 0),
            "fusion": d["fusion_config"],
            "class_temperature": cal.get("class_temperature", 1.0),
            "defect_temperature": cal.get("defect_temperature", 1.0),
        },
        "products": {
            pid: {
                "name": p.get("name", pid),
                "classes": p["classes"],
                "manual_sha256": p["manual_sha256"],
                "manual_version": str(p.get("manual_version", "")),
                "manual": p.get("manual", ""),
                "decision": decision(p["thresholds"], p.get("calibrated_on", "")),
                "image_only": decision(p["image_only"], p.get("calibrated_on", ""), ("defect_head",)),
            }
            for pid, p in d["products"].items()
        },
        "fallback": decision(cal["fallback"], "uncalibrated", ("classifier", "defect_head")),
        **{k: d[k] for k in ("verdict", "data", "train", "metrics", "versions") if k in d},
    }


def _upgrade_2(d: dict[str, Any]) -> dict[str, Any]:
    """Format 2 -> 3: nothing moved; its views are all raw, the default."""
    return {**d, "format": 3}


def _upgrade_3(d: dict[str, Any]) -> dict[str, Any]:
    """Format 3 -> 4: nothing moved; its decisions take the largest score, the default."""
    return {**d, "format": 4}


def _upgrade_4(d: dict[str, Any]) -> dict[str, Any]:
    """Format 4 -> 5: nothing moved; its defect types come from one part, as they always did."""
    return {**d, "format": 5}


def _upgrade_5(d: dict[str, Any]) -> dict[str, Any]:
    """Format 5 -> 6: nothing moved; its segmentation heads were all taught by masks."""
    return {**d, "format": 6}


def _upgrade_6(d: dict[str, Any]) -> dict[str, Any]:
    """Format 6 -> 7: nothing moved; its thresholds were set without naming the parts they stand on."""
    return {**d, "format": 7}


def _upgrade_7(d: dict[str, Any]) -> dict[str, Any]:
    """Format 7 -> 8: nothing moved; its classifier was one head."""
    return {**d, "format": 8}


def _upgrade_8(d: dict[str, Any]) -> dict[str, Any]:
    """Format 8 -> 9: its classifier was scored in the device's own numerics, bf16 on CUDA."""
    classifier = d.get("classifier")
    if classifier is not None:
        cuda = str(d.get("train", {}).get("device", "cpu")).startswith("cuda")
        classifier = {**classifier, "precision": "bfloat16" if cuda else "float32"}
    return {**d, "classifier": classifier, "format": 9}


def _upgrade_9(d: dict[str, Any]) -> dict[str, Any]:
    """Format 9 -> 10: nothing moved; its defect types came from the view as it is."""
    return {**d, "format": 10}


def _upgrade_10(d: dict[str, Any]) -> dict[str, Any]:
    """Format 10 -> 11: a decision typed over mirrors averaged the view and its three mirrors."""

    def views(decision: dict[str, Any]) -> dict[str, Any]:
        rest = {k: v for k, v in decision.items() if k != "mirrored_types"}
        return {**rest, "type_views": 4 if decision.get("mirrored_types") else 1}

    products = {
        name: {**p, "decision": views(p["decision"]), "image_only": views(p["image_only"])}
        if isinstance(p, dict) and {"decision", "image_only"} <= p.keys()
        else p
        for name, p in d.get("products", {}).items()
    }
    fallback = views(d["fallback"]) if isinstance(d.get("fallback"), dict) else d.get("fallback")
    return {**d, "products": products, "fallback": fallback, "format": 11}


def _upgrade_11(d: dict[str, Any]) -> dict[str, Any]:
    """Format 11 -> 12: nothing moved; its anomaly views extracted in float32 (the default)."""
    return {**d, "format": 12}


def _upgrade_12(d: dict[str, Any]) -> dict[str, Any]:
    """Format 12 -> 13: nothing moved; its promises counted images (``n_parts`` unknown)."""
    return {**d, "format": 13}


UPGRADES = {
    1: _upgrade_1, 2: _upgrade_2, 3: _upgrade_3, 4: _upgrade_4, 5: _upgrade_5, 6: _upgrade_6, 7: _upgrade_7,
    8: _upgrade_8, 9: _upgrade_9, 10: _upgrade_10, 11: _upgrade_11, 12: _upgrade_12,
}  # fmt: skip


def parse_card(data: dict[str, Any], source: str = "card") -> ModelCard:
    fmt = data.get("format") if isinstance(data, dict) else None
    if not isinstance(fmt, int):
        raise CardError(f"{source}: not a model card (no format number)")
    if fmt > CARD_FORMAT:
        raise CardError(
            f"{source}: card format {fmt} is newer than this inspector reads (up to {CARD_FORMAT}); upgrade inspector"
        )
    try:
        while fmt < CARD_FORMAT:
            if fmt not in UPGRADES:
                raise CardError(f"{source}: card format {fmt} is too old to read; retrain the model")
            data, fmt = UPGRADES[fmt](data), fmt + 1
        return ModelCard.model_validate(data)
    except (KeyError, TypeError) as exc:
        raise CardError(f"{source}: format {data.get('format')} card is missing {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise CardError(f"{source}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None


def load_card(path: Path) -> ModelCard:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"{path}: no model card; run `inspector train`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: not valid JSON ({exc})") from None
    return parse_card(data, str(path))
