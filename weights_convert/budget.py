"""What reading one file may cost: memory in proportion to the file's real size, never to what it claims.

Every size a file declares (a zip member's length, a storage's element count, a tensor's shape and strides,
an array header's shape) is charged here before anything is allocated, and so is every object reached
through the file's shared references, so a small file cannot expand into a large one.
"""
from __future__ import annotations

from .escaping import shown

SLACK = 16 << 20  # bytes any file may use beyond its proportion: small files with expanded views stay usable
OUTPUT_FACTOR = 4  # float32 weights read from 8-bit floats take 4x the file
READ_FACTOR = 4  # a zip's members may inflate to this multiple of the file (weights barely compress)
OBJECTS_SLACK = 100_000  # objects reached beyond one per byte of file
MAX_DEPTH = 100  # containers nested deeper than this are no checkpoint
MAX_PICKLE_OPS = 2_000_000  # pickle operations; a checkpoint's pickle needs a few per tensor
MAX_NDIM = 64  # dimensions of one array (numpy allows 32, torch 64)


class BadData(Exception):
    """A declared size or structure the file cannot back; the reader adds the file's name."""


class Budget:
    """The allowance of one file: bytes read from it, bytes of arrays made from it, objects reached in it."""

    def __init__(self, file_size: int) -> None:
        self.file_size = file_size
        self.read_left = READ_FACTOR * file_size + SLACK
        self.output_left = OUTPUT_FACTOR * file_size + SLACK
        self.objects_left = file_size + OBJECTS_SLACK

    def _too_big(self, what: str, nbytes: int, limit: int) -> BadData:
        return BadData(f"{what} declares {nbytes} bytes, more than a file of {self.file_size} bytes can hold "
                       f"(limit {limit} bytes)")

    def read(self, nbytes: int, what: str) -> None:
        """Charge ``nbytes`` about to be read or inflated from the file."""
        if nbytes > self.read_left:
            raise self._too_big(what, nbytes, READ_FACTOR * self.file_size + SLACK)
        self.read_left -= nbytes

    def output(self, nbytes: int, what: str) -> None:
        """Charge an array of ``nbytes`` about to be made (once per reference to it)."""
        if nbytes > self.output_left:
            raise self._too_big(what, nbytes, OUTPUT_FACTOR * self.file_size + SLACK)
        self.output_left -= nbytes

    def reach(self) -> None:
        """Charge one object reached while walking what the file holds."""
        self.objects_left -= 1
        if self.objects_left < 0:
            raise BadData(f"shared references expand to more than {self.file_size + OBJECTS_SLACK} objects "
                          f"(a reference bomb)")


def described(value: object) -> str:
    """A file-made value for a message, without calling repr on what might nest a million levels deep."""
    if type(value) is int or (isinstance(value, (tuple, list)) and len(value) <= MAX_NDIM
                              and all(type(n) is int for n in value)):
        return shown(value)
    return f"a {type(value).__name__}"


def checked_shape(shape: object, what: str = "an array") -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints, or BadData."""
    if not (isinstance(shape, (tuple, list)) and len(shape) <= MAX_NDIM
            and all(type(n) is int and n >= 0 for n in shape)):
        raise BadData(f"{what} has an invalid shape {described(shape)}")
    return tuple(shape)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d  # Python ints: a product of huge dimensions cannot overflow into a small number
    return n
