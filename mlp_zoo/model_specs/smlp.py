"""sMLPNet (arXiv 2109.05422), as in the official SPACH code: variants, published figures, native keys, and the
paper's ablations as build options (``SMLPOptions``), recorded in the state dict of a model built with any."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .registry import Family, ModelInfo, State, add_family, add_variants, count_indices

FUSIONS = ("concat", "sum", "weighted")
AXIAL_ORDERS = ("parallel", "serial")
TOKEN_MIXINGS = ("sparse", "dense")
# the state-dict key of the options record: float32 bytes of their JSON (the converter keeps float weights only)
OPTIONS_KEY = "options"
# the dense token MLP's hidden width per stage, as a fraction of the stage's N tokens (docs/ablations.md): a
# Mixer-like ratio of N or more makes the first stage alone (N = 3136 at 224) outweigh the whole sMLPNet-T
DENSE_HIDDEN_RATIO = 0.5


@dataclass(frozen=True)
class SMLPOptions:
    """The paper's ablations of the sMLPNet block; the defaults build the published model.

    fusion: how [identity, W-mix, H-mix] are fused: "concat" (+ 1x1 conv, published), "sum", "weighted" (three
    learned scalars); identity: keep the identity branch; axial: W and H mixing "parallel" (published) or
    "serial" (H mixes the W-mix's output); local: keep the depthwise part (BatchNorm, GELU, 3x3 conv);
    sparse_stages: per stage, whether its blocks mix tokens globally (else the depthwise part only);
    token_mixing: "sparse" (axial, published) or "dense" (MLP-Mixer's token MLP over a stage's N tokens).
    """

    fusion: str = "concat"
    identity: bool = True
    axial: str = "parallel"
    local: bool = True
    sparse_stages: tuple[bool, ...] = (True, True, True, True)
    token_mixing: str = "sparse"

    def __post_init__(self) -> None:
        for name, value, allowed in (("fusion", self.fusion, FUSIONS), ("axial", self.axial, AXIAL_ORDERS),
                                     ("token_mixing", self.token_mixing, TOKEN_MIXINGS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        for name in ("identity", "local"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        stages = self.sparse_stages
        if not isinstance(stages, (tuple, list)) or not all(isinstance(s, bool) for s in stages):
            raise ValueError(f"sparse_stages must be a tuple of booleans, got {stages!r}")
        object.__setattr__(self, "sparse_stages", tuple(stages))
        if not self.local and not all(stages):
            raise ValueError("local=False with a stage out of sparse_stages leaves that stage no token mixing")
        if self.token_mixing == "dense" and (self.fusion, self.identity, self.axial) != ("concat", True, "parallel"):
            raise ValueError("fusion, identity and axial apply to the sparse token mixing, not token_mixing='dense'")

    def for_depths(self, n_stages: int) -> "SMLPOptions":
        """Checked against a network of ``n_stages`` stages."""
        if len(self.sparse_stages) != n_stages:
            raise ValueError(f"sparse_stages has {len(self.sparse_stages)} entries for {n_stages} stages")
        return self

    def changed(self) -> dict[str, Any]:
        """The options that differ from the published model, JSON-ready."""
        default = SMLPOptions()
        return {f.name: list(v) if isinstance(v, tuple) else v for f in fields(self)
                if (v := getattr(self, f.name)) != getattr(default, f.name)}

    def record(self) -> np.ndarray | None:
        """The ``OPTIONS_KEY`` entry of a state dict (None for the published model, whose keys stay official)."""
        changed = self.changed()
        if not changed:
            return None
        return np.frombuffer(json.dumps(changed, sort_keys=True).encode(), np.uint8).astype(np.float32)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """Build options from a command line's ``KEY=VALUE`` words (``fusion=sum local=false sparse_stages=0111``),
    checked; ValueError naming the bad word."""
    bools = {"true": True, "false": False, "1": True, "0": False}
    options: dict[str, Any] = {}
    known = [f.name for f in fields(SMLPOptions)]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known:
            raise ValueError(f"{pair!r}: not KEY=VALUE with KEY one of {', '.join(known)}")
        if key == "sparse_stages":
            if not value or set(value) - {"0", "1"}:
                raise ValueError(f"{pair!r}: sparse_stages takes one 1 or 0 per stage, e.g. sparse_stages=0111")
            options[key] = tuple(c == "1" for c in value)
        elif key in ("identity", "local"):
            if value.lower() not in bools:
                raise ValueError(f"{pair!r}: {key} takes true or false")
            options[key] = bools[value.lower()]
        else:
            options[key] = value
    try:
        SMLPOptions(**options)
    except ValueError as e:
        raise ValueError(f"{' '.join(pairs)}: {e}") from None
    return options


def read_record(record: np.ndarray) -> dict[str, Any]:
    """The build options an ``OPTIONS_KEY`` entry records; ValueError if it is not a valid record."""
    codes = np.asarray(record).ravel()
    if codes.ndim != 1 or not np.all((codes >= 0) & (codes < 256) & (codes == np.round(codes))):
        raise ValueError(f"'{OPTIONS_KEY}' is not a record of sMLPNet options")
    try:
        options = json.loads(codes.astype(np.uint8).tobytes().decode())
        known = {f.name for f in fields(SMLPOptions)}
        if not isinstance(options, dict) or set(options) - known:
            raise ValueError
        if "sparse_stages" in options:
            options["sparse_stages"] = tuple(options["sparse_stages"])
        SMLPOptions(**options)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise ValueError(f"'{OPTIONS_KEY}' is not a record of sMLPNet options") from None
    return options


def _keyed_options(state: State, n_stages: int) -> dict[str, Any]:
    """The options that show in the keys and shapes of a state dict."""
    def has(stage: int, part: str) -> bool:
        return any(k.startswith(f"stages.{stage}.blocks.0.token_mix.{part}") for k in state)

    mixing = [has(s, "mix_w.") or has(s, "token_mlp.") for s in range(n_stages)]
    out: dict[str, Any] = {"local": any(has(s, "dw_conv.") for s in range(n_stages)), "sparse_stages": tuple(mixing),
                           "token_mixing": "dense" if any(has(s, "token_mlp.") for s in range(n_stages)) else "sparse"}
    fuse = next((state[k] for k in state if k.endswith(".token_mix.fuse.weight")), None)
    if fuse is not None:
        branches = fuse.shape[0] if fuse.ndim == 1 else fuse.shape[1] // fuse.shape[0]
        out.update(fusion="weighted" if fuse.ndim == 1 else "concat", identity=branches == 3)
    elif out["token_mixing"] == "sparse" and any(mixing):
        out["fusion"] = "sum"
    return {k: v for k, v in out.items() if v != getattr(SMLPOptions(), k)}


def _grid_img_size(state: State, n_stages: int) -> tuple[int, int] | None:
    """The input size the grid-sized weights imply: the first stage with axial or (square) dense token mixing."""
    for s in range(n_stages):
        block = f"stages.{s}.blocks.0.token_mix"
        if f"{block}.mix_h.weight" in state:
            return state[f"{block}.mix_h.weight"].shape[0] * 4 * 2 ** s, state[f"{block}.mix_w.weight"].shape[0] * 4 * 2 ** s
        if f"{block}.token_mlp.mlp.fc1.weight" in state:
            side = int(round(state[f"{block}.token_mlp.mlp.fc1.weight"].shape[1] ** 0.5))
            return side * 4 * 2 ** s, side * 4 * 2 ** s
    return None

add_variants(
    ModelInfo("smlpnet_t", "smlp", dict(embed_dim=80, depths=(2, 8, 14, 2), drop_path_rate=0.0),
              params=24_123_584, macs=4.99, top1=81.9, official_release=None),
    ModelInfo("smlpnet_s", "smlp", dict(embed_dim=96, depths=(2, 10, 24, 2), drop_path_rate=0.2),
              params=48_558_136, macs=10.31, top1=83.1, official_release="smlp_s.pth (SPACH)"),
    ModelInfo("smlpnet_b", "smlp", dict(embed_dim=112, depths=(2, 10, 24, 2), drop_path_rate=0.3),
              params=65_880_408, macs=13.99, top1=83.4, official_release="smlp_b.pth (SPACH)"),
)


def describe(state: State) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(architecture, extra build arguments) of a native sMLPNet state dict, or None."""
    if "stem.weight" not in state or not any(k.startswith("stages.0.blocks.0.token_mix.") for k in state):
        return None
    n_stages = count_indices(state, r"stages\.(\d+)\.")
    depths = tuple(count_indices(state, rf"stages\.{s}\.blocks\.(\d+)\.") for s in range(n_stages))
    img = _grid_img_size(state, n_stages)
    extra: dict[str, Any] = {} if img in ((224, 224), None) else {"img_size": img}
    keyed = _keyed_options(state, n_stages)
    recorded = read_record(state[OPTIONS_KEY]) if OPTIONS_KEY in state else {}
    clash = [k for k in keyed if k in recorded and recorded[k] != keyed[k]] + [k for k in recorded if k not in keyed
                                                                               and _shows_in_keys(k, recorded)]
    if clash:
        raise ValueError(f"its '{OPTIONS_KEY}' record disagrees with its keys on {', '.join(sorted(set(clash)))}")
    extra.update({**keyed, **recorded})
    if "head.weight" in state and state["head.weight"].shape[0] != 1000:
        extra["num_classes"] = state["head.weight"].shape[0]
    return {"embed_dim": state["stem.weight"].shape[0], "depths": depths}, extra


def _shows_in_keys(option: str, recorded: dict[str, Any]) -> bool:
    """Whether a recorded non-default ``option`` would show in the keys (so that its absence there is a clash)."""
    if option in ("local", "sparse_stages", "token_mixing"):
        return True
    return option == "fusion" or (option == "identity" and recorded.get("fusion", "concat") != "sum")


add_family(Family("smlp", describe, arch_keys=("embed_dim", "depths"),
                  classifier=("head.weight", "head.bias")))
