"""Errors a user can act on: each message names the input and what is wrong in one line."""


class InspectorError(Exception):
    """Base for every error the CLI and the service report without a traceback."""


class ManualError(InspectorError):
    pass


class ImageError(InspectorError):
    pass


class UnknownProductError(InspectorError):
    pass


class DataError(InspectorError):
    pass
