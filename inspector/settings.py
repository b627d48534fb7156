"""Typed settings: the one place environment variables are read.

Every field can be set as ``INSPECTOR_<FIELD>`` or, nested, ``INSPECTOR_<GROUP>__<FIELD>``
(e.g. ``INSPECTOR_MODEL__FUSION=late``). CLI options override these per command.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseModel):
    backbone: str = "efficientnet_lite0"
    text_encoder: str = "minilm_l6"
    fusion: str = "cross_attention"
    hidden_dim: int = Field(256, ge=8)
    text_source: Literal["manual", "ids"] = "manual"  # "ids" ablates the manual (image-only baseline)
    input_size: int | None = Field(None, ge=32)  # classifier input side; None = the backbone's own (224)
    classifier: bool = True  # train the classifier (it needs defect images in train)
    device: str = "auto"  # auto = cuda when available, else cpu


class TrainSettings(BaseModel):
    mode: Literal["frozen", "finetune"] = "frozen"
    trainable_stages: int = Field(2, ge=0)  # finetune mode: last N backbone stages learn
    # finetune mode: the frozen stages' output cached for N views per train image (1 clean +
    # augmented), so each step runs the learning stages only; 0 decodes and augments every image anew
    finetune_views: int = Field(2, ge=0)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    patience: int = Field(6, ge=1)
    seed: int = 0
    views: int = Field(2, ge=1)  # frozen mode: cached views per train image (1 clean + augmented)
    # frozen mode: classifier heads trained from seeds seed, seed+1000, ... on the same features,
    # each at its own temperature, their probabilities averaged. Opt-in: on the demo 3 heads ranked
    # poly's cells better (classifier val AUROC +0.02) but the station's val escape moved by -1.0
    # points on poly and +1.6 on mono over three seeds (docs/RESULTS.md). Fine-tuning trains one:
    # each head would need its own backbone
    heads: int = Field(1, ge=1)
    # k >= 2: the deciding parts are chosen on val's defects and the train defects, each scored by
    # parts refitted without its fold (whole physical parts per fold; inspector/selection.py).
    # Off: on magnetic-tile it chose worse sets (test escape 61 vs 46 %, three seeds) at 2-3x the
    # training time (docs/RESULTS.md)
    selection_folds: int = Field(0, ge=0)
    max_bad_share: float = Field(0.05, ge=0, le=1)  # refuse to train when more of the data is unusable
    # CPU priority (Unix nice) of model building: train, onboard, retrain and the scheduler. 19, the
    # lowest, keeps a line served on the same machine inside its inspect window: beside the demo's
    # training the line kept 12.4 of 20 parts/s with 6 fail-safe timeouts at the line's priority,
    # and 20 with none at 19 (docs/service.md). 0: as any process (a machine that trains only)
    nice: int = Field(19, ge=0, le=19)


class VerdictSettings(BaseModel):
    target_frr: float = Field(0.01, gt=0, lt=1)  # promised false-reject rate on good parts
    # a product's own promise, e.g. {"magnetic-tile": 0.03}: a promise of alpha needs 1/alpha - 1
    # good calibration parts, and a product with few (magnetic-tile's 56 tiles back 1.8 % at best)
    # gets none at the line's 1 %, only its largest calibration score as the threshold
    target_frr_by_product: dict[str, Annotated[float, Field(gt=0, lt=1)]] = {}
    warn_frr: float = Field(0.05, gt=0, lt=1)  # good parts allowed into the operator-review band
    calibration_share: float = Field(0.3, gt=0, lt=1)  # good train parts held out to set thresholds (at least)
    # every score decides unless a smaller set lets fewer val defects through in this share of
    # bootstrap redraws of val's physical parts; 0 takes val's best set outright, which on
    # magnetic-tile's 2-3 val tiles per defect type changed with the seed (docs/RESULTS.md)
    selection_confidence: float = Field(0.95, ge=0, le=1)
    # how the deciding scores become one: "max" lets any one fail a part; "mean" adds up scores that
    # each see a defect a little; "auto" takes the mean only where it lets fewer val defects through
    # in selection_confidence of the redraws (pcb's val: 98 %; docs/RESULTS.md)
    pooling: Literal["auto", "max", "mean"] = "auto"
    # a product's own, e.g. {"magnetic-tile": "mean"}: val's dozen defect tiles cannot tell the two
    # apart, a cross-validation over the train and val tiles can (bench/accuracy.py --only folds
    # --folds-without-test, run once with each; docs/RESULTS.md)
    pooling_by_product: dict[str, Literal["auto", "max", "mean"]] = {}
    # the most views val may choose to name defect types over: the classifier's mean over the part
    # and its three mirrors (4; pcb's test type-F1 0.951 -> 0.964, docs/RESULTS.md), or its right-
    # angle turns too (8, as training augments). Each view is one more classifier pass per val
    # defect in training, and per part not accepted on the line; 1: the view alone, never more
    type_views: Literal[1, 4, 8] = 8  # models.card.TypeViews: settings stay free of torch imports
    # accepted parts the station puts in the review queue at random (by a hash of the inspection's
    # id): their reviews are the one measurement of the defects it ships (docs/drift.md)
    spot_check_share: float = Field(0.005, ge=0, le=1)

    def target_frr_of(self, product: str) -> float:
        """The false-reject rate promised on ``product``'s good parts."""
        return self.target_frr_by_product.get(product, self.target_frr)

    def pooling_of(self, product: str) -> str:
        """How ``product``'s deciding scores become one (``pooling``, or the product's own)."""
        return self.pooling_by_product.get(product, self.pooling)


class AnomalySettings(BaseModel):
    """The anomaly branch: per product, a memory bank of good patches (docs/architecture.md)."""

    enabled: bool = True
    # candidate inputs, "<patch extractor>@<view>": view "auto" (from the product's image sizes),
    # "fit448" (a 448 px square) or "scale1.0" (aspect kept, pixels x1.0, longest side at most 1024);
    # "+std" after a view standardises each image's grey levels first (opt-in: as a default candidate val
    # never chose it on the shared data and chose it wrongly on solar-cell-poly, docs/RESULTS.md);
    # with several, each is judged on parts its bank never saw: val's, up to view_judges train defects (a
    # bank holds good parts only) and as many good train parts scored by banks built without them (never
    # calibration parts); the first stays unless another lets fewer of those defects through (mean over
    # FRR 1-3 %) in view_confidence of their redraws. "efficientnet_lite0@fit160" (a small square that sees
    # a tile whole) is opt-in: on magnetic-tile it won (96 %) and let fewer defects through, but rejected
    # 3 of 26 val and 2 of 25 test good tiles, all with visible marks, breaking the 1 % promise on both
    # splits (docs/RESULTS.md)
    candidates: list[str] = ["efficientnet_lite0@auto", "efficientnet_lite0@fit320"]
    view_judges: int = Field(200, ge=0)
    # the first candidate stays unless another lets fewer judged defects through in this share of the
    # redraws of the judged parts (the deciding scores' rule, verdict.selection_confidence)
    view_confidence: float = Field(0.95, ge=0, le=1)
    views: dict[
        str, str
    ] = {}  # per-product override of the candidates, e.g. {"magnetic-tile": "efficientnet_lite0@scale1.0"}
    bank_size: int = Field(6000, ge=16)  # coreset patches per product at most (inference cost grows with it)
    # the patch extractor's numerics for the banks built, their calibration and the station alike (the
    # card keeps them per product). "bfloat16" takes a quarter off the anomaly part's time per part on a
    # CPU with bf16 units (AMX or AVX512-BF16), but on the demo val's escape rose by 1-3 cells in 6 of
    # 6 product-runs (three trainings, two CPUs) and poly's test escape by 2-6 points, so it is opt-in
    # (docs/PERFORMANCE.md)
    precision: Literal["float32", "bfloat16"] = "float32"
    coreset_ratio: float = Field(0.1, gt=0, le=1)  # ... and at most this share of the sampled patches
    pool_size: int = Field(60_000, ge=100)  # patches sampled from the good images before the coreset
    min_good: int = Field(5, ge=2)  # good images a product needs for a bank (calibration parts included)
    calibration_folds: int = Field(5, ge=2)  # cross-fit banks: each scores the calibration parts it was built without
    type_head: bool = True  # name defects from the anomalous region (needs defect images in train)
    # a defect type with fewer train images than this also learns from each one mirrored left-right,
    # top-bottom and both (a scratch mirrored is still a scratch): on a magnetic-tile-only model (17-82 per
    # type) val type-F1 rose from 0.70-0.76 to 0.79-0.85, in the full three-seed run test rose 0.49 -> 0.50,
    # inside the seed spread; on pcb (350 per type) it did nothing but cost (docs/RESULTS.md); 0 turns it off
    type_head_mirrors_below: int = Field(100, ge=0)
    # a product with this many masked train defects also learns to segment them: the stored map is then
    # the head's P(defect) per region, and typing reads that region; 0 turns it off
    segmentation_min_masks: int = Field(10, ge=0)
    segmentation_steps: int = Field(600, ge=1)
    # a product without masks but with this many defect train images (and good ones) gets the same
    # head taught by image labels: it scores the part, the map stays the bank's, and its score decides
    # only where val shows it beats the other scores beyond chance (on probation: it never learnt a
    # defect type the train split lacks). On pcb's honest split (2,100 defect images) val chose it on every
    # seed, once alone: 13.8 / 11.8 / 23.6 % escape, against 19.8 / 29.1 / 17.8 % in the last run without
    # it, a gain not beyond the seeds' spread;
    # on the demo's solar cells (a few hundred) it did not pay for the minutes it costs (docs/RESULTS.md).
    # 0 turns it off
    label_head_min_defects: int = Field(1000, ge=0)
    label_head_steps: int = Field(200, ge=1)
    # a head taught by masks: its score is evidence like the others, it decides beside them unless
    # val drops it beyond chance (verdict.selection_confidence). When val's best set was taken
    # outright it chose the head and the test escape rose from 46 to 63 % (docs/RESULTS.md); with
    # train.selection_folds the head is refitted per fold and the choice reads the train defects too
    segmentation_decides: bool = True
    # patch features kept in memory while one command trains (and, in the demo, retrains) on the same
    # images, so each image is extracted once per view; past it they are recomputed (0: keep none)
    memo_mb: int = Field(1536, ge=0)


class DriftSettings(BaseModel):
    """Windows and alarm thresholds of the drift checks (docs/drift.md explains each)."""

    interval_minutes: float = Field(15, gt=0)  # how often the scheduler checks
    window: int = Field(200, ge=10)  # newest inspections per (product, line) in one check
    min_window: int = Field(30, ge=5)  # fewer judged inspections: the check waits
    baseline: int = Field(2000, ge=10)  # earlier inspections the output metrics compare against
    min_baseline: int = Field(100, ge=10)
    lookback_days: float = Field(7, gt=0)  # products / lines / reviews seen this recently are checked
    permutations: int = Field(2000, ge=50)  # permutations / simulations: the smallest p is 1 / (this + 1)
    mmd_p_warn: float = Field(0.01, gt=0, lt=1)  # p-values for warn / high: MMD, the defect-rate CUSUM,
    # the false-reject promise on the line, and the significance a PSI needs besides its size
    mmd_p_high: float = Field(0.001, gt=0, lt=1)
    psi_warn: float = Field(0.1, gt=0)
    psi_high: float = Field(0.25, gt=0)
    confidence_drop_warn: float = Field(0.05, gt=0)
    confidence_drop_high: float = Field(0.10, gt=0)
    review_rise_warn: float = Field(0.05, gt=0)
    review_rise_high: float = Field(0.15, gt=0)
    disagreement_warn: float = Field(0.10, gt=0)
    disagreement_high: float = Field(0.25, gt=0)
    min_reviews: int = Field(10, ge=1)
    check_size: bool = True  # off for products whose images are crops of varying size (psi_pixels)

    @model_validator(mode="after")
    def _reachable(self) -> DriftSettings:
        if 1 / (self.permutations + 1) > self.mmd_p_high:
            raise ValueError(f"permutations={self.permutations} cannot reach p < mmd_p_high={self.mmd_p_high}")
        return self


class RetrainSettings(BaseModel):
    """When a challenger is trained and what it must show to be promoted."""

    data: list[Path] = []  # original training data; empty = the folders recorded in the champion's card
    nightly_hour: int | None = Field(2, ge=0, le=23)  # local hour of the nightly retrain; None = off
    min_new_reviews: int = Field(50, ge=1)  # reviewed labels since the last run that trigger a retrain
    on_high_drift: bool = True  # a high-severity drift event triggers a retrain
    drift_cooldown_hours: float = Field(12, ge=0)  # persisting drift retriggers at most this often
    check_minutes: float = Field(10, gt=0)  # how often triggers are looked at
    holdout: float = Field(0.3, gt=0, lt=1)  # share of reviewed images kept out of training to judge on
    golden_tolerance: float = Field(0.01, ge=0)  # a bigger golden drop, if significant, refuses the challenger
    min_gain: float = Field(0.0, ge=0)  # the recent gain must exceed this, and be significant
    lease_minutes: float = Field(10, gt=0)  # a running run renews its lock; a crashed one's expires after this


class CameraSettings(BaseModel):
    source: str  # device index, rtsp:// or http:// URL, or a video file
    product: str
    name: str = "cam0"
    mode: Literal["interval", "trigger"] = "interval"
    every_n: int = Field(1, ge=1)
    rate: float | None = Field(None, gt=0)


class HandshakeSettings(BaseModel):
    """The PLC handshake (docs/service.md): the inspect window a result must come within."""

    product: str = ""  # the recipe active at start; a PLC changes it with ActivateRecipe
    window_ms: float = Field(100, gt=0)  # a result later than this is a fail-safe reject (code 101)
    windows_ms: dict[str, float] = {}  # per-product windows, e.g. {"glass-bottle": 500}
    fault_after: int = Field(3, ge=1)  # late results in a row that put the station in Fault


class OpcUaSettings(BaseModel):
    """The OPC UA machine-vision server; users sign in with the store's user names and passwords."""

    endpoint: str = "opc.tcp://127.0.0.1:4840/inspector"
    allow_anonymous: bool = False
    certificate: Path | None = None  # with private_key: Basic256Sha256 Sign&Encrypt only
    private_key: Path | None = None
    trusted_certs: list[Path] = []  # client certificates (DER) accepted as X.509 user tokens


class SparkplugSettings(BaseModel):
    """Sparkplug B on the service's MQTT broker (mqtt_host)."""

    group: str = "inspector"
    edge_node: str = ""  # default: the service's station name, else "station"
    device: str = ""  # default: the camera's name, else "cam0"


class ServiceSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    line: str = ""
    station: str = ""
    watch: Path | None = None  # hot folder: <watch>/<product>/*
    max_batch: int = Field(32, ge=1)
    max_wait_ms: float = Field(10, ge=0)
    queue_size: int = Field(256, ge=1)
    decode_threads: int | None = Field(None, ge=1)  # None: one per core, at most 8
    # None: every core but one where a PLC drives the station over OPC UA, else every core
    model_threads: int | None = Field(None, ge=1)
    max_body_mb: float = Field(50, gt=0)
    # answered without a key even once keys exist (probes and scrapers); every other path needs one
    open_paths: list[str] = ["/v1/health", "/v1/ready", "/metrics"]
    mqtt_host: str | None = None
    mqtt_port: int = Field(1883, ge=1, le=65535)
    camera: CameraSettings | None = None
    handshake: HandshakeSettings = HandshakeSettings()
    opcua: OpcUaSettings | None = None
    sparkplug: SparkplugSettings | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INSPECTOR_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        env_ignore_empty=True,
        populate_by_name=True,  # scheduled jobs rebuild settings from a dump
    )

    home: Path = Path("var")  # models, caches, images and demo data live under here
    database_url_override: str | None = Field(None, validation_alias="INSPECTOR_DATABASE_URL")
    max_image_pixels: int = Field(40_000_000, ge=64)
    model: ModelSettings = ModelSettings()
    anomaly: AnomalySettings = AnomalySettings()
    train: TrainSettings = TrainSettings()
    verdict: VerdictSettings = VerdictSettings()
    service: ServiceSettings = ServiceSettings()
    drift: DriftSettings = DriftSettings()
    retrain: RetrainSettings = RetrainSettings()

    @field_validator("home")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def database_url(self) -> str:
        """INSPECTOR_DATABASE_URL, else an SQLite file under home (the embedded default)."""
        return self.database_url_override or f"sqlite:///{self.home / 'inspector.db'}"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def default_model(self) -> Path:
        return self.models_dir / "current"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def load_settings(path: Path) -> Settings:
    """Settings from a TOML file (its values win over INSPECTOR_* variables)."""
    import tomllib

    from inspector.errors import InspectorError

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InspectorError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InspectorError(f"{path}: not valid TOML ({exc})") from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise InspectorError(f"{path}: {where}: {first['msg']}") from None
