"""From what a user names as weights to a local file: the one place both frameworks and every tool resolve it.

``pretrained`` is ``True`` (the variant's default release), a release name ``variant.tag``
(``mlp_zoo.model_specs.published``), ``"hf-hub:org/repo"`` (a file on the Hugging Face Hub, fetched and cached by
``huggingface_hub`` itself: ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_ENDPOINT``), or a path, returned as given.

Releases are cached at ``<cache>/<variant.tag>/<file name>``; ``<cache>`` is ``$MLPZOO_CACHE``, else
``$XDG_CACHE_HOME/mlp-zoo``, else ``~/.cache/mlp-zoo``. ``MLPZOO_MIRROR=<base URL>`` fetches every release as
``<base URL>/<published file name>`` instead of from its publisher. ``MLPZOO_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``)
reads the caches only.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from mlp_zoo.http_download import DownloadError, download
from mlp_zoo.model_specs import PUBLISHED, VARIANTS, Release, release
from weights_convert.errors import CheckpointError

HUB_PREFIX = "hf-hub:"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's order: safetensors first
_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)?")


def cache_dir() -> Path:
    """Where releases are cached (see the module docstring)."""
    if os.environ.get("MLPZOO_CACHE"):
        return Path(os.environ["MLPZOO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mlp-zoo"


def cached_path(r: Release) -> Path:
    """The path of release ``r`` in the cache, whether or not it is there."""
    return cache_dir() / r.name / Path(r.file).name


def offline() -> str | None:
    """The variable that makes this run offline, or None."""
    for var in ("MLPZOO_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def source_urls(r: Release) -> list[str]:
    """The URLs ``fetch`` tries for ``r``: the mirror's only when ``MLPZOO_MIRROR`` is set."""
    mirror = os.environ.get("MLPZOO_MIRROR", "").strip()
    return [f"{mirror.rstrip('/')}/{r.file}"] if mirror else list(r.urls)


def fetch(r: Release, progress: bool | None = None) -> Path:
    """The local file of release ``r``: from the cache, else downloaded into it (verified; see
    ``mlp_zoo.http_download``), else timm's copy on the Hub. Raises DownloadError, one line."""
    dest = cached_path(r)
    if dest.is_file():
        return dest
    urls = source_urls(r)
    hub = r.hf_hub_id if not os.environ.get("MLPZOO_MIRROR", "").strip() else None
    where = urls[0] if urls else (r.page or "its publisher")
    if offline():
        if hub:
            try:
                return hub_file(hub, local_only=True)
            except DownloadError:
                pass
        raise DownloadError(f"{r.name}: not in the cache and {offline()}=1 forbids downloading; put the file from "
                            f"{where} at {dest}")
    if not urls and not hub:
        raise DownloadError(f"{r.name}: no direct download; get the file from {where} and put it at {dest} "
                            f"(or serve it as {r.file} from MLPZOO_MIRROR)")
    try:
        return download(urls, dest, r.sha256, r.size, progress)
    except DownloadError as e:
        if not hub:
            raise
        try:
            return hub_file(hub)
        except DownloadError as hub_error:
            raise DownloadError(f"{e}; and timm's copy: {hub_error}") from None


def hub_file(repo_id: str, local_only: bool = False) -> Path:
    """The weights file of Hub repository ``repo_id`` (timm's layout: model.safetensors, else
    pytorch_model.bin) through ``huggingface_hub``, which caches it; one-line DownloadError on failure."""
    import huggingface_hub

    local_only = local_only or offline() is not None
    last: Exception | None = None
    for filename in HUB_FILES:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, filename, local_files_only=local_only))
        except Exception as e:  # noqa: BLE001 (the Hub client's errors are many: HTTP, connection, cache, offline)
            last = e
            if not _missing_file(e):  # else try timm's other file name
                break
    first = str(last).strip().splitlines()[0] if last and str(last).strip() else type(last).__name__
    hint = f" ({offline()}=1: the Hub cache only)" if local_only and offline() else ""
    raise DownloadError(f"{HUB_PREFIX}{repo_id}{hint}: {type(last).__name__}: {first[:300]}")


def _missing_file(e: Exception) -> bool:
    """Whether ``e`` says only that this one file is absent (so timm's other file name may exist)."""
    from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError

    return isinstance(e, (EntryNotFoundError, LocalEntryNotFoundError))


def is_release_name(text: str) -> bool:
    """Whether ``text`` has the form of a release name ``variant.tag`` of a known variant."""
    return bool(_NAME.fullmatch(text)) and "." in text and text.split(".", 1)[0] in VARIANTS


def resolve_weights(pretrained: bool | str | os.PathLike, model: str | None = None) -> str | os.PathLike:
    """The local file ``pretrained`` names, for variant ``model`` (needed for ``True``): an existing path wins
    over a release of the same name. Raises CheckpointError (a name that is no release) or DownloadError (its
    subclass), one line each."""
    if pretrained is True:
        if model is None:
            raise CheckpointError("pretrained=True needs the model's name")
        try:
            r = release(model)
        except (KeyError, ValueError) as e:
            raise CheckpointError(str(e).strip("'\"")) from None
        return fetch(r)
    if isinstance(pretrained, str) and pretrained.startswith(HUB_PREFIX):
        return hub_file(pretrained[len(HUB_PREFIX):])
    if isinstance(pretrained, str) and is_release_name(pretrained) and not os.path.exists(pretrained):
        if pretrained not in PUBLISHED:
            try:
                release(pretrained)
            except ValueError as e:
                raise CheckpointError(f"{pretrained}: no such file, and {e}") from None
        r = PUBLISHED[pretrained]
        if model is not None and r.variant != model:
            raise CheckpointError(f"{pretrained} is a release of {r.variant}, not of {model}")
        return fetch(r)
    return pretrained
