"""scikit-learn's handwritten digits (they ship with the package, so fine-tuning works offline), upscaled once in
numpy; ``training.data`` streams them like an image folder."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0  # the train/test split never changes with the training seed


@dataclass
class Dataset:
    """RGB images as uint8 (N, H, W, 3) at the model's input size, integer labels, and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    train: np.ndarray  # indices of the training images
    test: np.ndarray


def _split(labels: np.ndarray, classes: list[str], images: np.ndarray, test_fraction: float) -> Dataset:
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    return Dataset(images, labels, classes, np.sort(order[n_test:]), np.sort(order[:n_test]))


def _resize(image: "PIL.Image.Image", size: tuple[int, int]) -> np.ndarray:
    """The shorter side to the size (Pillow's bilinear), then the centre crop: ``eval_transform`` of
    ``pretrained_cfg(size, ...)`` computes the same pixels, so a fine-tuned model is evaluated on what it saw."""
    from PIL import Image

    from .transforms import center_crop, resize_shorter

    if size[0] != size[1]:
        raise ValueError(f"input size {size}: only square inputs are supported")
    return center_crop(np.asarray(resize_shorter(image.convert("RGB"), size[0], Image.BILINEAR)), size[0])


def digits(size: tuple[int, int], test_fraction: float = 0.2) -> Dataset:
    """The 1797 8x8 grey digits of scikit-learn (values 0-16), upscaled bilinearly to ``size`` as RGB."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    grey = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.stack([_resize(Image.fromarray(g), size) for g in grey])
    return _split(data.target.astype(np.int64), [str(c) for c in data.target_names], images, test_fraction)
