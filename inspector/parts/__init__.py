"""Model parts as the engine composes them: each turns a product's images into one
``PartOutput`` per image. A new kind of model is one new module here behind ``Part``."""

from inspector.parts.base import Part, TypesOverTurns

__all__ = ["Part", "TypesOverTurns"]
