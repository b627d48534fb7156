"""Pure ML for inspector: encoders, fusion variants, heads, training, metrics, export.

No database, no files beyond checkpoints, nothing from ``inspector`` or ``dashboard``.
"""

from models.calibration import Thresholds, calibrate_thresholds, defect_score, fit_temperature
from models.card import CardError, ModelCard, load_card
from models.classifier import Classifier, ClassifierEnsemble, CrossModalClassifier, FineTuneModel, build_classifier
from models.encoders import (
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    ImageEncoder,
    TextEncoder,
    WeightsUnavailableError,
    create_image_encoder,
    create_text_encoder,
)
from models.export import load_anomaly, load_classifier, read_card, save_checkpoint
from models.fusion import create_fusion, list_fusions
from models.metrics import product_metrics
from models.types import ClassifierOutput, FusionConfig, PartOutput, ProductTexts

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "CardError",
    "Classifier",
    "ClassifierEnsemble",
    "ClassifierOutput",
    "CrossModalClassifier",
    "FineTuneModel",
    "FusionConfig",
    "ImageEncoder",
    "ModelCard",
    "PartOutput",
    "ProductTexts",
    "TextEncoder",
    "Thresholds",
    "WeightsUnavailableError",
    "build_classifier",
    "calibrate_thresholds",
    "create_fusion",
    "create_image_encoder",
    "create_text_encoder",
    "defect_score",
    "fit_temperature",
    "list_fusions",
    "load_anomaly",
    "load_card",
    "load_classifier",
    "product_metrics",
    "read_card",
    "save_checkpoint",
]
