"""Class names of the label sets the releases were trained on, read from the lists shipped in ``labels/``."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

LABELS = Path(__file__).resolve().parent / "labels"
# label set -> (file of WordNet ids in class-index order, class count)
LABEL_SETS = {"imagenet-1k": ("imagenet_synsets.txt", 1000), "imagenet-21k": ("imagenet21k_goog_synsets.txt", 21843)}


@lru_cache(maxsize=None)
def _lemmas() -> dict[str, str]:
    rows = (line.split("\t", 1) for line in (LABELS / "imagenet_synset_to_lemma.txt").read_text().splitlines())
    return {synset: lemma for synset, lemma in rows}


@lru_cache(maxsize=None)
def synsets(label_set: str) -> tuple[str, ...]:
    """The WordNet ids of ``label_set`` in class-index order (for ImageNet-1k: sorted, = ImageFolder order)."""
    if label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {label_set!r}; known: {', '.join(LABEL_SETS)}")
    file, count = LABEL_SETS[label_set]
    ids = tuple((LABELS / file).read_text().split())
    if len(ids) != count:
        raise ValueError(f"{LABELS / file}: {len(ids)} class ids, expected {count}")
    return ids


def class_names(label_set: str) -> list[str]:
    """The first lemma of each class of ``label_set`` (e.g. 'tench'), in class-index order."""
    lemmas = _lemmas()
    return [lemmas[s].split(",")[0].strip() for s in synsets(label_set)]


def label_set_for(num_classes: int) -> str | None:
    """The label set with ``num_classes`` classes, as timm guesses it from the count; None if there is none."""
    return next((name for name, (_, count) in LABEL_SETS.items() if count == num_classes), None)
