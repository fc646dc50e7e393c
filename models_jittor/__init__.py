"""The zoo's models in Jittor (the runtime module prepares Jittor before anything imports it)."""
from mlp_zoo.jittor_support import runtime  # noqa: F401  (must come first)
import importlib
import pkgutil

from .registry import create_model, list_models, load_state, state_shapes

# every module but these is a model family that registers its variants on import
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in ("registry", "layers"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["create_model", "list_models", "load_state", "state_shapes"]
