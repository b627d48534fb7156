"""Pure ML for inspector: encoders, fusion variants, heads, training, metrics, export.

No database, no files beyond checkpoints, nothing from ``inspector`` or ``dashboard``.
"""

from models.calibration import Thresholds, calibrate_thresholds, defect_score, fit_temperature
from models.classifier import CrossModalClassifier, FineTuneModel
from models.encoders import (
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    ImageEncoder,
    TextEncoder,
    WeightsUnavailableError,
    create_image_encoder,
    create_text_encoder,
)
from models.export import load_checkpoint, save_checkpoint
from models.fusion import create_fusion, list_fusions
from models.metrics import product_metrics
from models.types import ClassifierOutput, FusionConfig, ProductTexts

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "ClassifierOutput",
    "CrossModalClassifier",
    "FineTuneModel",
    "FusionConfig",
    "ImageEncoder",
    "ProductTexts",
    "TextEncoder",
    "Thresholds",
    "WeightsUnavailableError",
    "calibrate_thresholds",
    "create_fusion",
    "create_image_encoder",
    "create_text_encoder",
    "defect_score",
    "fit_temperature",
    "list_fusions",
    "load_checkpoint",
    "product_metrics",
    "save_checkpoint",
]
