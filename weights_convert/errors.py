"""The one exception the converter raises: its message is a complete, single, printable line."""
from .escaping import one_line


class CheckpointError(ValueError):
    """A checkpoint cannot be read, recognised, matched to a model or written."""

    def __init__(self, message: str) -> None:
        # whatever a file put into the message, it prints as one line that cannot drive the terminal
        super().__init__(one_line(str(message)))
