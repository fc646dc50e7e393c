"""Listing an evaluation set once, up front: an ImageFolder (one sub-folder per class) or a flat folder with a
labels file. Only names are listed; nothing is opened, so a bad entry is reported when it is decoded."""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from weights_convert.escaping import shown

# torchvision's IMG_EXTENSIONS, plus .gif
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


class FolderError(ValueError):
    """A folder or labels file that cannot be listed; the message names it."""


@dataclass
class Listing:
    """``items``: (path, class index) in ImageFolder order; ``classes``: the class names in index order."""

    items: list[tuple[str, int]]
    classes: list[str]


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def walk_images(folder: str) -> Iterator[str]:
    """Image names under ``folder``, streamed in torchvision's ImageFolder order (``sorted(os.walk(folder,
    followlinks=True))``: folders by their path as a string, names sorted within a folder) without walking the
    tree first: the pending folders wait in a heap, whose smallest path is always the next in that order (every
    unlisted folder is below a pending one, which sorts before it). A folder is a folder whatever its name (one
    named ``x.jpg`` is descended into, not listed) and is listed once, however many links lead to it; any other
    entry named like an image (a file, a FIFO, a dangling link) is listed, to be reported when it is decoded."""
    pending, seen = [folder], set()
    while pending:
        root = heapq.heappop(pending)
        try:
            info = os.stat(root)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(root))
        except OSError:  # unreadable or gone: os.walk skips it too
            continue
        names = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                heapq.heappush(pending, os.path.join(root, entry.name))
            elif is_image_name(entry.name):
                names.append(entry.name)
        yield from (os.path.join(root, name) for name in sorted(names))


def image_folder(root: str | os.PathLike) -> Listing:
    """Every image under ``root/<class>/``; classes are the sub-folder names in sorted order."""
    root, classes = class_folders(root)
    items = list(image_folder_items(root, classes))
    if not items:
        raise FolderError(f"{shown(root)}: no images in its {len(classes)} class folders")
    return Listing(items, classes)


def class_folders(root: str | os.PathLike) -> tuple[str, list[str]]:
    """``root`` as a string and its class names: the sub-folder names in sorted order."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FolderError(f"{shown(root)}: not a folder")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise FolderError(f"{shown(root)}: no class folders (expected {shown(root)}/<class>/<image>; "
                          f"for a flat folder give a labels file)")
    return root, classes


def image_folder_items(root: str, classes: list[str]) -> Iterator[tuple[str, int]]:
    """(path, class index) of ``image_folder``, one class folder at a time (for a compact store of millions)."""
    for index, c in enumerate(classes):
        for path in walk_images(os.path.join(root, c)):
            yield path, index


def labelled_folder(root: str | os.PathLike, labels_file: str | os.PathLike,
                    classes: list[str] | None = None) -> Listing:
    """A flat folder whose labels are in ``labels_file``: one ``name label`` per line (whitespace, tab or comma
    between), ``name`` relative to ``root``, ``label`` a class index or a class name. Names are looked up in
    ``classes`` when given (e.g. the model's synsets), else the sorted set of names in the file becomes the
    class list. Items come in sorted name order."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FolderError(f"{shown(root)}: not a folder")
    try:
        lines = Path(labels_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FolderError(f"{shown(os.fspath(labels_file))}: cannot read the labels file ({e})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        fields = line.replace(",", " ").split()
        if not fields or line.lstrip().startswith("#"):
            continue
        if len(fields) != 2:
            raise FolderError(f"{shown(os.fspath(labels_file))}, line {number}: expected 'name label', "
                              f"got {shown(line)}")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise FolderError(f"{shown(os.fspath(labels_file))}: no labels")
    numeric = all(label.isdigit() for _, label in pairs)
    if classes is None:
        classes = ([str(i) for i in range(max(int(label) for _, label in pairs) + 1)] if numeric
                   else sorted({label for _, label in pairs}))
    index = {c: i for i, c in enumerate(classes)}
    items = []
    for name, label in sorted(pairs):
        if numeric and label not in index:
            number = int(label)
            if number >= len(classes):
                raise FolderError(f"{shown(os.fspath(labels_file))}: label {number} of {shown(name)} is out of "
                                  f"range ({len(classes)} classes)")
            items.append((os.path.join(root, name), number))
        elif label in index:
            items.append((os.path.join(root, name), index[label]))
        else:
            raise FolderError(f"{shown(os.fspath(labels_file))}: label {shown(label)} of {shown(name)} is not "
                              f"a known class")
    return Listing(items, list(classes))


def list_folder(root: str | os.PathLike, labels_file: str | os.PathLike | None = None,
                classes: list[str] | None = None) -> Listing:
    """``labelled_folder`` when a labels file is given, else ``image_folder``."""
    return image_folder(root) if labels_file is None else labelled_folder(root, labels_file, classes)
