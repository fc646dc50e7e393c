"""The evaluation transform of a ``pretrained_cfg``, in Pillow and numpy, the same for both frameworks.

``crop_mode='center'`` is timm's ``create_transform(..., is_training=False)`` on torchvision's PIL path, rule for
rule, so an RGB image gives the same float32 array element for element: the shorter side resized to
``floor(size / crop_pct)`` and the longer to ``int(s * long / short)`` with Pillow's filter (no resize when the
size is already right), a centre crop at ``int(round((h - size) / 2.0))`` (zero padding if the image is smaller),
``/ 255`` then ``(x - mean) / std`` in float32.

``crop_mode='squash'`` is Google's JAX evaluation (vit_jax ``input_pipeline.py``): the whole image resized to
``floor(size / crop_pct)`` on both sides (crop_pct 1: to the input size, nothing cut) by ``tf.image.resize``'s
bilinear without antialiasing, computed in float32 on the 0-255 values, then normalised.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from PIL import Image

from .decode import to_rgb

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
           "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}
CROP_MODES = ("center", "squash")


def _square(input_size: Any) -> int:
    size = input_size[-2:] if isinstance(input_size, (tuple, list)) else (input_size, input_size)
    if size[0] != size[1]:
        raise ValueError(f"input_size {tuple(input_size)}: only square inputs are supported")
    return int(size[0])


def resize_shorter(image: Image.Image, size: int, resample: int) -> Image.Image:
    """torchvision's ``Resize(size)`` on a PIL image: the shorter side to ``size``, the longer in proportion
    (truncated), the image untouched when already that size."""
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), resample)


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """torchvision's ``CenterCrop(size)`` on an (H, W, C) array: zero padding first where the image is smaller
    (left/top get the smaller half), then the crop at ``int(round((h - size) / 2.0))``."""
    h, w = pixels.shape[:2]
    if size > h or size > w:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        pixels = np.pad(pixels, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2), (0, 0)))
        h, w = pixels.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return pixels[top:top + size, left:left + size]


def tf_bilinear(pixels: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``tf.image.resize(pixels, (out_h, out_w), 'bilinear', antialias=False)`` of an (H, W, C) array, in
    float32: half-pixel centres, edge samples clamped."""
    x = pixels.astype(np.float32)

    def axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = np.float32(in_size) / np.float32(out_size)
        pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(pos)
        lower = np.maximum(floor, 0).astype(np.int64)
        upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
        return lower, upper, (pos - floor).astype(np.float32)

    y0, y1, y_lerp = axis(x.shape[0], out_h)
    x0, x1, x_lerp = axis(x.shape[1], out_w)
    x_lerp = x_lerp[None, :, None]
    top = x[y0][:, x0] + (x[y0][:, x1] - x[y0][:, x0]) * x_lerp
    bottom = x[y1][:, x0] + (x[y1][:, x1] - x[y1][:, x0]) * x_lerp
    return top + (bottom - top) * y_lerp[:, None, None]


def eval_transform(cfg: dict[str, Any]) -> Callable[[Image.Image], np.ndarray]:
    """A callable taking a PIL image of any mode and returning the model's float32 (3, H, W) input, as the
    release ``cfg`` (a ``pretrained_cfg``: input_size, crop_pct, crop_mode, interpolation, mean, std) says."""
    size = _square(cfg["input_size"])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    crop_mode = cfg.get("crop_mode", "center")
    interpolation = cfg.get("interpolation", "bicubic")
    if crop_mode not in CROP_MODES:
        raise ValueError(f"crop_mode {crop_mode!r}: use one of {', '.join(CROP_MODES)}")
    if interpolation not in FILTERS:
        raise ValueError(f"interpolation {interpolation!r}: use one of {', '.join(FILTERS)}")
    if crop_mode == "squash" and interpolation != "bilinear":
        raise ValueError(f"crop_mode 'squash' is tf.image.resize's bilinear: interpolation {interpolation!r} "
                         f"is not available there")
    if not 0 < crop_pct <= 4:
        raise ValueError(f"crop_pct {crop_pct}: must be in (0, 4]")
    mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(cfg["std"], dtype=np.float32).reshape(3, 1, 1)
    scale_size = math.floor(size / crop_pct)
    resample = FILTERS[interpolation]

    def transform(image: Image.Image) -> np.ndarray:
        image = to_rgb(image)
        if crop_mode == "center":
            pixels = center_crop(np.asarray(resize_shorter(image, scale_size, resample)), size)
            x = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        else:
            resized = tf_bilinear(np.asarray(image), scale_size, scale_size)
            x = center_crop(resized, size).transpose(2, 0, 1) / np.float32(255)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    return transform
