"""The training augmentation of these papers' timm recipes, in Pillow and numpy, the same for both frameworks:
RandomResizedCrop (scale (0.08, 1), ratio (3/4, 4/3), the release's interpolation) and a horizontal flip with
probability 0.5, then ``/ 255`` and the cfg's mean/std.

The crop follows torchvision's ``RandomResizedCrop.get_params`` (which timm's ``RandomResizedCropAndInterpolation``
copies) rule for rule: ten tries of an area in ``scale`` and a log-uniform aspect ratio, rounded sides, a uniform
position; otherwise a centre crop clamped to ``ratio``. The draws come from ``sample_rng(seed, epoch, index)``, a
numpy generator per sample and epoch: any process, framework or resumed run draws the same crop for the same
image, whatever the worker or batch it lands in.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from PIL import Image

from .decode import to_rgb
from .transforms import FILTERS

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def crop_box(width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = SCALE,
             ratio: tuple[float, float] = RATIO) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop of a ``width`` x ``height`` image."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(cfg: dict[str, Any], scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO,
                    hflip: float = 0.5) -> Callable[[Image.Image, np.random.Generator], np.ndarray]:
    """A callable taking a PIL image and its generator and returning a float32 (3, H, W) training input at the
    cfg's ``input_size``, resized with its ``interpolation`` and normalised with its ``mean``/``std``."""
    size = int(cfg["input_size"][-1])
    resample = FILTERS[cfg.get("interpolation", "bicubic")]
    mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(cfg["std"], dtype=np.float32).reshape(3, 1, 1)

    def transform(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        image = to_rgb(image)
        top, left, h, w = crop_box(image.width, image.height, rng, scale, ratio)
        # crop, then resize (torchvision's resized_crop): the filter sees no pixel outside the crop
        image = image.crop((left, top, left + w, top + h)).resize((size, size), resample)
        pixels = np.asarray(image)
        if rng.random() < hflip:
            pixels = pixels[:, ::-1]
        x = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    return transform
