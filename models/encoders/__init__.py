from models.encoders.image import IMAGE_ENCODERS, ImageEncoder, create_image_encoder
from models.encoders.text import TEXT_ENCODERS, TextEncoder, create_text_encoder
from models.encoders.weights import WeightsUnavailableError

__all__ = [
    "IMAGE_ENCODERS",
    "TEXT_ENCODERS",
    "ImageEncoder",
    "TextEncoder",
    "WeightsUnavailableError",
    "create_image_encoder",
    "create_text_encoder",
]
