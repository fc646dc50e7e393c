"""Opening any path as a fully decoded RGB image, or saying in one line why it cannot be.

A corrupt image is never handed on as partial pixels: Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off and every
image is decoded in full before it is accepted. Nothing here blocks (a FIFO named ``.jpg`` is refused without
reading) or allocates what a header merely claims (a decompression bomb is refused from its header).
"""
from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from weights_convert.escaping import one_line, shown

# Pillow's own warning threshold (~89.5 megapixels, a 9459x9459 image): far above any photo a classifier sees,
# and a bound on what one image may cost (about 270 MB as RGB)
MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class BadImage:
    """An image that could not be used: its path and why. Returned (not raised) by ``load_rgb`` so that it
    travels from a worker process like any result; ``line()`` is the one-line report."""

    path: str
    reason: str

    def line(self) -> str:
        return one_line(f"{shown(self.path)}: {self.reason}")


class BadImageError(Exception):
    """Raised by ``open_rgb``; carries the ``BadImage``."""

    def __init__(self, bad: BadImage):
        super().__init__(bad.line())
        self.bad = bad


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB as timm reads it (``convert('RGB')``: alpha is dropped, not composited), except that
    more than 8 bits per channel are scaled down to 8 rather than clipped at 255."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when such a palette image goes to RGB directly
    return image.convert("RGB")


def open_rgb(path: str | os.PathLike, exif_transpose: bool = False, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """``path`` decoded in full as an RGB PIL image (the first frame of an animation or multi-page file); any
    problem raises ``BadImageError`` with the escaped name and the reason."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: a truncated image would be decoded "
                           "as partial pixels")
    name = os.fsdecode(path)
    bad = lambda reason: BadImageError(BadImage(name, reason))  # noqa: E731
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    except FileNotFoundError:
        raise bad("no such file (deleted?)") from None
    except PermissionError:
        raise bad("not readable (permission denied)") from None
    except OSError as e:
        raise bad(f"cannot open ({e.strerror or e})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        os.close(fd)
        raise bad("empty file (0 bytes)" if stat.S_ISREG(info.st_mode)
                  else f"is {_kind(info.st_mode)}, not an image file")
    with os.fdopen(fd, "rb") as f:
        try:
            with warnings.catch_warnings():  # the size is checked below, in one message
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(f)  # reads the header only; not closed: an RGB image is returned as is
            width, height = image.size
            if width * height > max_pixels:
                raise bad(f"declares {width}x{height} pixels, over the limit of {max_pixels} "
                          f"(a decompression bomb?); not decoded")
            image.seek(0)
            image.load()  # the full decode: a truncated or corrupt file fails here
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            return to_rgb(image)
        except BadImageError:
            raise
        except Image.DecompressionBombError as e:
            raise bad(f"a decompression bomb ({e})") from None
        except Image.UnidentifiedImageError:
            raise bad("not an image (format not recognised)") from None
        except MemoryError:
            raise bad("too large to decode in memory") from None
        except Exception as e:  # Pillow's decoders raise many types on malformed data; none may stop a run
            raise bad(f"corrupt or truncated image ({type(e).__name__}: {e})") from None


def load_rgb(path: str | os.PathLike, exif_transpose: bool = False,
             max_pixels: int = MAX_PIXELS) -> Image.Image | BadImage:
    """``open_rgb``, with a bad image returned as ``BadImage`` instead of raised."""
    try:
        return open_rgb(path, exif_transpose, max_pixels)
    except BadImageError as e:
        return e.bad

