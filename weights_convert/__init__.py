"""Framework-neutral checkpoint conversion: read any supported file into numpy, check it, write it out.

Nothing here imports a model; torch is imported only to read or write PyTorch files.
"""
from .checkpoint import Checkpoint, read_checkpoint
from .errors import CheckpointError
from .writing import check_destination, write_atomic

__all__ = ["Checkpoint", "CheckpointError", "check_destination", "read_checkpoint", "write_atomic"]
