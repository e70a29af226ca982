"""One exception type for everything the user can fix, so the CLI prints it without a traceback."""


class MeddxError(Exception):
    """A problem with the user's input, config or environment, stated so that they can act on it."""


class ConfigError(MeddxError):
    """The config (conf/, params.yaml or an override) is not valid."""


class DataError(MeddxError):
    """A data file is missing, corrupt, or fails validation."""


class TrackingError(MeddxError):
    """The tracking server could not be reached; the stage's results are on disk and spooled."""
