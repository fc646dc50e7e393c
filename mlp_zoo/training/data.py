"""Training and test batches for the loop, streamed: an image is decoded, augmented and normalised in worker
processes (``image_data.stream``: ordered, at most ``queue`` images in flight) only when a step needs it, so memory
does not grow with the number of images. The same code serves an image folder (listed once, nothing opened up
front) and an in-memory data set (scikit-learn's digits). A bad image is named, counted and left out of its batch;
a shard left with none is an empty batch, which the loop still steps with.

Augmentation (``image_data.train_transforms``) is drawn per (seed, epoch, image index): both frameworks, every
rank and a resumed run see the same pixels for the same step."""
from __future__ import annotations

import sys
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from mlp_zoo.image_data.decode import BadImage, load_rgb
from mlp_zoo.image_data.path_store import PathStore
from mlp_zoo.image_data.stream import stream
from mlp_zoo.image_data.train_transforms import sample_rng, train_transform
from mlp_zoo.image_data.transforms import eval_transform

SPLIT_SEED = 0  # the train/test split never changes with the training seed


@dataclass
class FolderSource:
    """Images by index from a store of paths (decoded with image_data's checks)."""

    paths: PathStore

    def open(self, index: int) -> Any:
        return load_rgb(self.paths[index])


@dataclass
class ArraySource:
    """Images by index from a uint8 (N, H, W, 3) array."""

    images: np.ndarray

    def open(self, index: int) -> Any:
        from PIL import Image

        return Image.fromarray(self.images[index])


@dataclass
class Sampler:
    """``(index, epoch) -> (index, float32 (3, H, W) | BadImage)``; epoch None: the evaluation transform.
    Picklable (sent to worker processes); the transforms are built in each process."""

    source: FolderSource | ArraySource
    cfg: dict[str, Any]
    seed: int
    augment: bool
    _transforms: tuple | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transforms": None}

    def __call__(self, item: tuple[int, int | None]) -> tuple[int, Any]:
        index, epoch = item
        if self._transforms is None:
            self._transforms = (train_transform(self.cfg), eval_transform(self.cfg))
        image = self.source.open(index)
        if isinstance(image, BadImage):
            return index, image
        if epoch is None or not self.augment:
            return index, self._transforms[1](image)
        return index, self._transforms[0](image, sample_rng(self.seed, epoch, index))


class StreamedData:
    """``train``/``test``: indices of the two splits; ``labels``, ``classes``; ``train_batches`` and
    ``test_batches`` stream the pixels."""

    def __init__(self, source: FolderSource | ArraySource, labels: np.ndarray, classes: list[str],
                 cfg: dict[str, Any], seed: int, augment: bool, workers: int, test_fraction: float = 0.2) -> None:
        self.labels, self.classes, self.cfg, self.workers = labels, classes, cfg, workers
        self.sampler = Sampler(source, cfg, seed, augment)
        order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
        n_test = int(round(len(labels) * test_fraction))
        self.train, self.test = np.sort(order[n_test:]), np.sort(order[:n_test])
        self.bad: set[str] = set()

    def _skip(self, bad: BadImage) -> None:
        if bad.path not in self.bad:
            print(f"skipping {bad.line()}", file=sys.stderr, flush=True)
            self.bad.add(bad.path)

    def _stack(self, results: list[tuple[int, Any]]) -> tuple[np.ndarray, np.ndarray]:
        good = []
        for index, value in results:
            if isinstance(value, BadImage):
                self._skip(value)
            else:
                good.append((index, value))
        if not good:  # an empty shard: it still takes its part in the step (training.loop)
            return np.zeros((0, *self.cfg["input_size"]), np.float32), np.zeros(0, np.int64)
        return (np.stack([v for _, v in good]),
                self.labels[np.array([i for i, _ in good])].astype(np.int64))

    def train_batches(self, steps: Iterable[tuple[Any, int, list[np.ndarray]]]
                      ) -> Iterator[tuple[Any, list[tuple[np.ndarray, np.ndarray]]]]:
        """For each ``(tag, epoch, shards)`` of ``steps``: ``(tag, [(x, y) per shard])``, read ahead in order."""
        pending: deque[tuple[Any, list[int]]] = deque()

        def items() -> Iterator[tuple[int, int]]:
            for tag, epoch, shards in steps:
                pending.append((tag, [len(s) for s in shards]))
                for shard in shards:
                    yield from ((int(i), epoch) for i in shard)

        results = (value for _, value in stream(items(), self.sampler, self.workers))
        for first in results:
            tag, sizes = pending.popleft()
            flat = [first] + [next(results) for _ in range(sum(sizes) - 1)]
            bounds = np.cumsum([0] + sizes)
            yield tag, [self._stack(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def test_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(x, y, n)`` over the test split in batches of ``batch_size``, the last padded by repetition (one
        shape for Jittor to compile); the first ``n`` rows are real."""
        results = stream(((int(i), None) for i in self.test), self.sampler, self.workers)
        batch: list[tuple[int, Any]] = []
        for _, result in results:
            if isinstance(result[1], BadImage):
                self._skip(result[1])
                continue
            batch.append(result)
            if len(batch) == batch_size:
                yield (*self._stack(batch), batch_size)
                batch = []
        if batch:
            n = len(batch)
            yield (*self._stack(batch + [batch[0]] * (batch_size - n)), n)


def read_source(source: str, size: int, listing: Path
                ) -> tuple[FolderSource | ArraySource, np.ndarray, list[str], dict[str, Any]]:
    """``digits`` (scikit-learn's, upscaled in memory) or an image folder with one folder per class, listed now
    into the ``PathStore`` file ``listing`` (nothing opened) and read as training goes: (source, labels, class
    names, what the cfg must say about the pixels as stored)."""
    if source == "digits":
        from mlp_zoo.image_data.datasets import digits

        data = digits((size, size))
        # already at the input size (resized bilinearly, uncropped)
        return (ArraySource(data.images), data.labels, data.classes,
                {"crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear"})
    from mlp_zoo.image_data.folder import FolderError, class_folders, image_folder_items

    root, classes = class_folders(source)
    labels = array("q")

    def paths() -> Iterator[str]:
        for path, label in image_folder_items(root, classes):
            labels.append(label)
            yield path

    store = PathStore.write(listing, paths())  # never a list of every path in any process
    if not len(store):
        Path(listing).unlink()  # nothing of a refused run is left
        raise FolderError(f"{root}: no images in its {len(classes)} class folders")
    return FolderSource(store), np.frombuffer(labels.tobytes(), np.int64).copy(), classes, {}
