"""Token-mixing weights moved to a new input size: every family of the zoo at any size its structure can take.

Mixer's token MLP, sMLPNet's axial mixes and ViP's permute MLPs have weights the size of the token grid. This
module resizes them in numpy, so both frameworks load the same numbers.

The resize operator
-------------------
``resize_matrix(n, m)`` is the (m, n) matrix R that resizes a length-n signal to length m, as
``jax.image.resize`` does (the operator FlexiViT's PI-resize is built from): half-pixel centres (output i samples
input position ``(i + 0.5) * n / m - 0.5``), the kernel (triangle for bilinear, Keys' cubic with a = -0.5 for
bicubic) widened by n / m when shrinking (antialiasing), and each row normalised to sum 1 over the taps inside the
signal. For bilinear upsampling this is exactly ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)``. A grid (H, W) flattened row-major, as Mixer's tokens are, is resized by the Kronecker
product ``R_h (x) R_w``: everything below is applied separably, rows then columns, and non-square targets need no
special case.

Derivation
----------
A weight that *reads* the grid, ``y = W x`` with x on the old grid (n), should give the old activations when the
new model sees the resized input ``x' = R x``: ``W' R x = W x`` for every x, i.e. ``W' R = W``. Its least-squares
solution is ``W' = W R^+`` (FlexiViT's ``pinv(B^T) w`` written for a row-vector weight). When upsampling (m >= n)
R has full column rank, ``R^+ R = I``, and the equation holds exactly; when shrinking it holds in the least-squares
sense (``W R^+ R`` is W projected onto what a shrunken grid can still show).

A weight or bias that *writes* the grid, ``z = V h + b`` with z on the old grid, should write the resized output:
``V' = R V``, ``b' = R b``. This is exact for every h, at any size: the new output is the old one resized.

A weight that reads and writes one axis (sMLPNet's ``W x + b`` along H or W) combines the two:
``W' = R W R^+``, ``b' = R b``.

What is preserved
-----------------
- Mixer token MLP (``fc1`` reads with PI, ``fc2`` writes with R): for an input that is the upsampling ``R x`` of
  a grid, the fc1 pre-activation equals the old one exactly (so do the GELU and the hidden units), and the
  token MLP's output is the upsampling of the old output: ``mlp'(R x) = R mlp(x)``.
- sMLPNet: each axial mix commutes with the separable upsampling, ``mix'(R_h x R_w^T) = R_h mix(x) R_w^T``
  (the bias too, as R's rows sum to 1), and so does the whole sparse-MLP part (identity, W-mix, H-mix, 1x1 fuse),
  as the fuse acts on each token alone.
- ViP (shrinking only, below): the same for the H and W permute branches within each segment.
- Shrinking: ``W' x' = R (W (R^+ x'))``: the new layer is the old layer on the least-squares lift of its input,
  resized down (exact as an identity, since ``R R^+ = I``), not the old layer on the original image.
- Only approximate for the network as a whole: LayerNorm, GELU, the channel MLPs and sMLPNet's 3x3 depthwise
  convs act token by token or locally and do not commute with resizing, so logits change, slightly for smooth
  images.

``interp`` (the baseline): every weight is resized as an image along its grid axes with R; weights that read the
grid are also scaled by ``n / m`` so a smooth input's pre-activation keeps its size. Writing weights and biases
get exactly what ``pi`` gives them.

Per family
----------
- Mixer: ``blocks.*.mlp_tokens.fc1.weight`` (hidden x N) reads, ``fc2.weight`` (N x hidden) and ``fc2.bias``
  write. Any size the patch divides. The old grid is read from the file: a square grid of N tokens (a file of a
  non-square grid states no shape, so it loads only at its own token count).
- sMLPNet: ``stages.s.blocks.*.token_mix.mix_h.{weight,bias}`` (H x H) and ``mix_w`` (W x W) of every stage,
  grids ``size / (4 * 2^s)``; any size divisible by 32, square or not.
- ViP: ``mix_h.weight`` and ``mix_w.weight`` of every block are C x C Linears on (grid, S) pairs, S = C /
  segment_dim the channels of a segment (their shape hides the grid, which must equal segment_dim). A new grid g'
  must keep ``g' * S' = C``; keeping what the weights mean (segments of S channels sharing one mix) is possible
  only when S' is a multiple of S, i.e. g' divides g: each new segment holds g / g' old ones, and its weight is
  the resampled old weight repeated block-diagonally over them (exact). Growing the grid would split old
  segments, and one segment_dim serves H and W: larger and non-square sizes are refused.
- ConvMLP: convolutions only, nothing is tied to the grid: any size, nothing to resample.
"""
from __future__ import annotations

import math
import re
import warnings
from typing import Any, Callable

import numpy as np

from mlp_zoo.model_specs import variant

from .errors import CheckpointError

State = dict[str, np.ndarray]
METHODS = ("pi", "interp", "none")
KERNELS = ("bilinear", "bicubic")
RESAMPLE_OPTIONS = ("resample", "resample_kernel")  # create_model's arguments that only apply to a pretrained file


def _triangle(t: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(t))


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t < 1, near, np.where(t < 2, far, 0.0))


def resize_matrix(n: int, m: int, kernel: str = "bilinear") -> np.ndarray:
    """The (m, n) float64 operator resizing a length-n signal to length m (conventions: module docstring)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if n < 1 or m < 1:
        raise ValueError(f"cannot resize between {n} and {m} samples")
    fn, support = (_triangle, 1.0) if kernel == "bilinear" else (_keys_cubic, 2.0)
    stretch = max(n / m, 1.0)  # widen the kernel when shrinking
    centres = (np.arange(m) + 0.5) * (n / m) - 0.5
    taps = np.arange(n)
    weights = fn((taps[None, :] - centres[:, None]) / stretch)
    weights[np.abs(taps[None, :] - centres[:, None]) >= support * stretch] = 0.0
    return weights / weights.sum(1, keepdims=True)


def _operators(old: int, new: int, kernel: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(R, the operator for reading weights): ``pinv(R)`` for PI, ``R^T n / m`` for interpolation."""
    r = resize_matrix(old, new, kernel)
    return r, (np.linalg.pinv(r) if method == "pi" else r.T * (old / new))


def _cast(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.astype(like.dtype))


def resample_token_mlp(fc1_w: np.ndarray, fc2_w: np.ndarray, fc2_b: np.ndarray, old: tuple[int, int],
                       new: tuple[int, int], method: str = "pi", kernel: str = "bilinear"
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixer's token MLP from grid ``old`` to ``new`` (both (H, W), tokens row-major): fc1 (hidden, N) reads,
    fc2 (N, hidden) and its bias (N,) write."""
    (rh, ph), (rw, pw) = (_operators(o, n, kernel, method) for o, n in zip(old, new))
    hidden = fc1_w.shape[0]
    w1 = np.einsum("khw,ha,wb->kab", fc1_w.reshape(hidden, *old).astype(np.float64), ph, pw,
                   optimize=True)
    w2 = np.einsum("ah,bw,hwk->abk", rh, rw, fc2_w.reshape(*old, hidden).astype(np.float64),
                   optimize=True)
    b2 = rh @ fc2_b.reshape(old).astype(np.float64) @ rw.T
    n = new[0] * new[1]
    return _cast(w1.reshape(hidden, n), fc1_w), _cast(w2.reshape(n, hidden), fc2_w), _cast(b2.reshape(n), fc2_b)


def resample_axial(weight: np.ndarray, bias: np.ndarray, new: int, method: str = "pi",
                   kernel: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """An (N, N) mix along one axis plus its (N,) bias, to length ``new``: ``R W R^+`` and ``R b``."""
    r, p = _operators(weight.shape[0], new, kernel, method)
    return _cast(r @ weight.astype(np.float64) @ p, weight), _cast(r @ bias.astype(np.float64), bias)


def resample_permute(weight: np.ndarray, old: int, new: int, method: str = "pi",
                     kernel: str = "bilinear") -> np.ndarray:
    """A ViP branch weight (C, C) on (grid ``old``, S) pairs to grid ``new`` (dividing ``old``): the (new, S)
    resampled weight, block-diagonal over the old / new old segments that make up each new segment."""
    c = weight.shape[0]
    s, k = c // old, old // new
    r, p = _operators(old, new, kernel, method)
    mixed = np.einsum("ah,hsit,ib->asbt", r, weight.reshape(old, s, old, s).astype(np.float64), p,
                      optimize=True)
    out = np.einsum("asbt,jl->ajsblt", mixed, np.eye(k))  # new channel (a, j, s): grid a, old segment j
    return _cast(out.reshape(c, c), weight)


# ---- per family: which keys, which grids, which build arguments


def _pair(size: Any, name: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
        raise CheckpointError(f"{name}: img_size must be an integer or a pair of integers, got {size!r}")
    return int(pair[0]), int(pair[1])


def _grid(name: str, size: tuple[int, int], stride: int, what: str) -> tuple[int, int]:
    shown = f"{name} at {size[0]}x{size[1]}"
    if size[0] < stride or size[1] < stride:
        raise CheckpointError(f"{shown}: a token grid smaller than 1x1 ({what} {stride} needs at least "
                              f"{stride}x{stride})")
    if size[0] % stride or size[1] % stride:
        raise CheckpointError(f"{shown}: {what} {stride} does not divide the input size")
    return size[0] // stride, size[1] // stride


def _mixer(name: str, state: State, size: tuple[int, int], method: str, kernel: str, built: dict[str, Any]
           ) -> tuple[State, list[str], str]:
    patch = state["stem.proj.weight"].shape[-1]
    new = _grid(name, size, patch, "the patch")
    n_old = state["blocks.0.mlp_tokens.fc1.weight"].shape[1]
    side = math.isqrt(n_old)
    if side * side != n_old:
        if n_old == new[0] * new[1]:
            return state, [], ""
        raise CheckpointError(f"{name} at {size[0]}x{size[1]}: the file's {n_old} tokens form no square grid, so "
                              f"the grid to resample from is unknown")
    old = (side, side)
    if old == new:
        return state, [], ""
    out, changed = dict(state), []
    for i in sorted({int(m.group(1)) for m in map(re.compile(r"blocks\.(\d+)\.mlp_tokens\.").match, state) if m}):
        k = f"blocks.{i}.mlp_tokens"
        out[f"{k}.fc1.weight"], out[f"{k}.fc2.weight"], out[f"{k}.fc2.bias"] = resample_token_mlp(
            state[f"{k}.fc1.weight"], state[f"{k}.fc2.weight"], state[f"{k}.fc2.bias"], old, new, method, kernel)
        changed += [f"{k}.fc1.weight", f"{k}.fc2.weight", f"{k}.fc2.bias"]
    return out, changed, f"{old[0]}x{old[1]} -> {new[0]}x{new[1]} tokens"


def _smlp(name: str, state: State, size: tuple[int, int], method: str, kernel: str, built: dict[str, Any]
          ) -> tuple[State, list[str], str]:
    n_stages = len({m.group(1) for m in map(re.compile(r"stages\.(\d+)\.").match, state) if m})
    _grid(name, size, 4 * 2 ** (n_stages - 1), "the total stride")
    out, changed, grids = dict(state), [], []
    for key in state:
        m = re.fullmatch(r"stages\.(\d+)\.blocks\.\d+\.token_mix\.mix_([hw])\.weight", key)
        if not m:
            continue
        target = size[0 if m.group(2) == "h" else 1] // (4 * 2 ** int(m.group(1)))
        if state[key].shape[0] != target:
            bias = key[:-len("weight")] + "bias"
            out[key], out[bias] = resample_axial(state[key], state[bias], target, method, kernel)
            changed += [key, bias]
    if changed:
        for s in range(n_stages):
            first = f"stages.{s}.blocks.0.token_mix"
            if first + ".mix_h.weight" not in state:  # an ablation without axial mixing in this stage
                continue
            grids.append(f"{state[first + '.mix_h.weight'].shape[0]}x{state[first + '.mix_w.weight'].shape[0]} -> "
                         f"{out[first + '.mix_h.weight'].shape[0]}x{out[first + '.mix_w.weight'].shape[0]}")
    return out, changed, "grids " + ", ".join(grids)


def vip_grids(name: str, size: tuple[int, int], built: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(old grids, new grids) of each ViP stage: the build's segment_dims and those ``size`` gives; refuses
    sizes the permute MLPs cannot take."""
    config = {**variant(name).config, **built}
    old, patch = tuple(config["segment_dims"]), config["patch_size"]
    shown = f"{name} at {size[0]}x{size[1]}"
    if size[0] != size[1]:
        raise CheckpointError(f"{shown}: ViP's permute MLPs use one segment_dim for H and W: square sizes only")
    _grid(name, size, patch * 2 ** (len(old) - 1), "the total stride")
    # a stage's new grid must divide its old one (each new channel segment = whole old segments)
    allowed = [patch * d for d in range(1, old[0] + 1)
               if all(d % 2 ** s == 0 and o % (d // 2 ** s) == 0 for s, o in enumerate(old))]
    if size[0] not in allowed:
        raise CheckpointError(f"{shown}: ViP's permute MLPs fold each stage's grid into its channels, so the grids "
                              f"{', '.join(f'{g}x{g}' for g in old)} can only shrink to sides dividing them "
                              f"(sizes {', '.join(map(str, allowed))})")
    new = tuple(size[0] // (patch * 2 ** s) for s in range(len(old)))
    return old, new


def _vip(name: str, state: State, size: tuple[int, int], method: str, kernel: str, built: dict[str, Any]
         ) -> tuple[State, list[str], str]:
    old, new = vip_grids(name, size, built)
    built["segment_dims"] = new
    if old == new:
        return state, [], ""
    out, changed = dict(state), []
    for key in state:
        m = re.fullmatch(r"stages\.(\d+)\.blocks\.\d+\.permute_mlp\.mix_[hw]\.weight", key)
        if m and old[int(m.group(1))] != new[int(m.group(1))]:
            s = int(m.group(1))
            out[key] = resample_permute(state[key], old[s], new[s], method, kernel)
            changed.append(key)
    return out, changed, "grids " + ", ".join(f"{o}x{o} -> {n}x{n}" for o, n in zip(old, new))


FAMILY_RESAMPLERS: dict[str, Callable[..., tuple[State, list[str], str]] | None] = {
    "mixer": _mixer, "smlp": _smlp, "vip": _vip, "convmlp": None}


def check_input_size(name: str, img_size: Any) -> None:
    """Refuse, with a one-line CheckpointError, an input size variant ``name`` cannot be built at: Mixer needs a
    multiple of its patch, sMLPNet of its total stride 32, ViP a size its permute MLPs can shrink to
    (``vip_grids``); ConvMLP (convolutions only) takes any size."""
    size = _pair(img_size, name)
    if min(size) < 1:
        raise CheckpointError(f"{name}: input size {size[0]}x{size[1]} must be positive")
    family, config = variant(name).family, variant(name).config
    if family == "mixer":
        _grid(name, size, config["patch_size"], "the patch")
    elif family == "smlp":
        _grid(name, size, 4 * 2 ** (len(config["depths"]) - 1), "the total stride")
    elif family == "vip":
        vip_grids(name, size, {})


def _grouped(keys: list[str]) -> str:
    """``blocks.*.mlp_tokens.fc1.weight (8)``: the changed keys with their indices folded."""
    groups: dict[str, int] = {}
    for k in keys:
        pattern = re.sub(r"\.\d+\.", ".*.", re.sub(r"\.\d+\.", ".*.", k))
        groups[pattern] = groups.get(pattern, 0) + 1
    return ", ".join(f"{p} ({n})" for p, n in groups.items())


def resample_state(name: str, state: State, img_size: Any, method: str = "pi", kernel: str = "bilinear",
                   built: dict[str, Any] | None = None) -> tuple[State, dict[str, Any], str]:
    """``state`` (native keys of variant ``name``) for inputs of ``img_size``: (state, the build arguments that
    size needs, a one-line note of what changed, empty when nothing did). ``built`` holds the build arguments
    already chosen (ViP's segment_dims are read from it). ``method='none'`` refuses any change of grid; an
    impossible size raises a one-line CheckpointError."""
    if method not in METHODS:
        raise CheckpointError(f"{name}: resample must be one of {', '.join(METHODS)}, got {method!r}")
    if kernel not in KERNELS:
        raise CheckpointError(f"{name}: resample_kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    family = variant(name).family
    size = _pair(img_size, name)
    resampler = FAMILY_RESAMPLERS[family]
    if resampler is None:
        return state, {}, f"{name} has no grid-sized weights (convolutions only): any input size, nothing resampled"
    args = {} if family == "vip" else {"img_size": size}
    chosen = dict(built or {})
    out, changed, grids = resampler(name, state, size, "pi" if method == "none" else method, kernel, chosen)
    if family == "vip":
        args["segment_dims"] = chosen["segment_dims"]
    if not changed:
        return state, args, ""
    if method == "none":
        raise CheckpointError(f"{name} at {size[0]}x{size[1]}: the weights are for other token grids ({grids}) "
                              f"and resample='none'; pass resample='pi' or 'interp' to resample them")
    how = "PI-resize (pinv of the resize operator) for weights reading the grid" if method == "pi" else \
        "interpolation (reading weights scaled by the token-count ratio)"
    note = (f"{name} at {size[0]}x{size[1]}: resampled {len(changed)} tensors, {grids}, {kernel}; {how}, the "
            f"resize operator for those writing it: {_grouped(changed)}")
    return out, args, note


def fit_to_size(name: str, state: State, file_options: dict[str, Any], kwargs: dict[str, Any], source: str
                ) -> tuple[State, dict[str, Any]]:
    """The ``create_model`` step: when ``kwargs`` asks for an ``img_size`` (with ``resample=`` 'pi' (default),
    'interp' or 'none', and ``resample_kernel=`` 'bilinear' (default) or 'bicubic'), the weights resampled to it,
    with a warning naming them, and the build arguments for that size."""
    kwargs = dict(kwargs)
    method, kernel = kwargs.pop("resample", "pi"), kwargs.pop("resample_kernel", "bilinear")
    if "img_size" not in kwargs:
        return state, kwargs
    if variant(name).family == "vip" and "segment_dims" in kwargs:
        raise CheckpointError(f"{name}: pass img_size or segment_dims, not both")
    size = kwargs.pop("img_size")
    out, args, note = resample_state(name, state, size, method, kernel, {**file_options, **kwargs})
    if note:
        warnings.warn(f"{source}: {note}", stacklevel=4)
    return out, {**kwargs, **args}
