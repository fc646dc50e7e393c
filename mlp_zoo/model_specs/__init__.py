"""Framework-neutral facts about every model in the zoo: variant tables, published figures, how to recognise
each family's native state dict, each release's evaluation settings (``pretrained_cfg``) and where each release
is published (``published``). Every module here but the helpers is a family and registers itself on import."""
import importlib
import pkgutil

from .pretrained_cfg import checkpoint_cfg, pretrained_cfg, releases
from .published import PUBLISHED, Release, published, release
from .registry import FAMILIES, VARIANTS, Family, ModelInfo, variant

_HELPERS = {"registry", "drop_path", "features", "pretrained_cfg", "published"}
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _HELPERS:
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["FAMILIES", "VARIANTS", "Family", "ModelInfo", "variant", "pretrained_cfg", "checkpoint_cfg", "releases",
           "PUBLISHED", "Release", "published", "release"]
