"""Small image-classification data for fine-tuning, prepared once in numpy and shared by both frameworks:
scikit-learn's handwritten digits (ships with the package, so it works offline) or a folder of class folders."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's, what pretrained weights expect
IMAGENET_MEAN = np.array(MEAN, dtype=np.float32)[:, None, None]
IMAGENET_STD = np.array(STD, dtype=np.float32)[:, None, None]
SPLIT_SEED = 0  # the train/test split never changes with the training seed


@dataclass
class Dataset:
    """RGB images as uint8 (N, H, W, 3) at the model's input size, integer labels, and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    train: np.ndarray  # indices of the training images
    test: np.ndarray

    def pretrained_cfg(self, name: str, size: int) -> dict:
        """The cfg a model fine-tuned on these images carries (``model_specs.checkpoint_cfg``): input at
        ``size``, shorter side resized bilinearly, no crop margin, ImageNet's mean/std, these class names."""
        return {"architecture": name, "tag": "finetune", "input_size": [3, size, size], "crop_pct": 1.0,
                "crop_mode": "center", "interpolation": "bilinear", "mean": MEAN, "std": STD,
                "num_classes": len(self.classes), "label_names": list(self.classes)}

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 NCHW images normalised with ImageNet's statistics (what pretrained weights expect), int64 labels."""
        x = self.images[indices].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return np.ascontiguousarray((x - IMAGENET_MEAN) / IMAGENET_STD), self.labels[indices].astype(np.int64)


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


def image_folder(root: str | Path, size: tuple[int, int], test_fraction: float = 0.2) -> Dataset:
    """Every image under ``root/<class>/``, classes in sorted order, resized to ``size``. A bad image is
    named on stderr, counted and left out."""
    from .decode import BadImage, load_rgb
    from .folder import image_folder as listing

    found = listing(root)
    images, labels, skipped = [], [], 0
    for path, label in found.items:
        image = load_rgb(path)
        if isinstance(image, BadImage):
            print(f"skipping {image.line()}", file=sys.stderr)
            skipped += 1
            continue
        images.append(_resize(image, size))
        labels.append(label)
    if not images:
        raise ValueError(f"{root}: none of its {len(found.items)} images could be read")
    if skipped:
        print(f"{root}: skipped {skipped} bad image(s)", file=sys.stderr)
    return _split(np.array(labels, dtype=np.int64), found.classes, np.stack(images), test_fraction)


def load(source: str, size: tuple[int, int]) -> Dataset:
    """``digits`` or the path of an image folder."""
    return digits(size) if source == "digits" else image_folder(source, size)
