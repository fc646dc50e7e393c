"""The one exception the converter raises: its message is a complete, single-line explanation."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read, recognised, matched to a model or written."""
