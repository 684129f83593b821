"""The exceptions crossrank raises on purpose, so callers can tell bad input from bad models from bugs.

Every interface maps these in one place: the CLI to exit codes, the HTTP server (later) to status codes.
"""


class CrossrankError(Exception):
    """Base class of every error crossrank raises deliberately."""


class ModelLoadError(CrossrankError):
    """A model could not be loaded: missing folder, no weights, wrong architecture, hub unreachable."""


class InvalidInputError(CrossrankError, ValueError):
    """A request is malformed: empty query, no documents, wrong types."""


class BackendUnavailableError(CrossrankError):
    """The requested backend or device is not available on this machine."""
