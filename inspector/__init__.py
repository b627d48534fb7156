"""inspector: the inspection station application (data, engine, CLI; store and service to come)."""

__version__ = "0.1.0"
