"""sMLPNet (Sparse MLP, arXiv 2109.05422) in Jittor, computing what the official SPACH model computes.

Each block: ``x + drop_path(token_mix(x))`` then ``x + drop_path(mlp(norm(x)))`` over channels.
The token mix is a depthwise 3x3 conv followed by the sparse MLP: identity, a mix along W and a mix along H
(each an N x N matrix shared over channels and the other axis), fused by a 1x1 conv.
Unlike the original, H and W may differ (``img_size=(H, W)``), and the blocks keep their activations
channels-last, (B, H, W, C), for speed: the BatchNorms take them as (B*H*W, C) rows, the convs run on NHWC
memory, and the channel MLP, the fuse and the axial mixes run as plain matrix products.
The parameters are the original ones, same names and shapes.

The paper's ablations are build options (``mlp_zoo.model_specs.smlp.SMLPOptions``: the fusion, the identity
branch, serial axial mixing, no depthwise part, no global mixing in some stages, a dense token MLP); a model built
with any keeps them in its state dict under ``options``, so that a checkpoint rebuilds it.
"""
from __future__ import annotations

import math

from mlp_zoo.jittor_support.runtime import jt
from jittor import init, nn

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.drop_path import linear_drop_path_rates
from mlp_zoo.model_specs.features import Indices, take_indices
from mlp_zoo.model_specs.smlp import DENSE_HIDDEN_RATIO, OPTIONS_KEY, SMLPOptions
from .layers import BatchNorm2d, DropPath, LayerNorm, Mlp, concat_linear, gelu_layer, permute, residual_branch, weighted_sum
from .registry import register_model


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ChannelsLastBatchNorm(BatchNorm2d):
    """BatchNorm2d on channels-last (B, H, W, C) input, taken as (B*H*W, C) rows: the BatchNorm normalises
    those per column, whereas moving the channels to axis 1 would cost a transpose copy. Our BatchNorm2d, not
    Jittor's, which trains with inaccurate statistics and a biased running variance."""

    def execute(self, x: jt.Var) -> jt.Var:
        return super().execute(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ChannelsLastConv2d(nn.Conv2d):
    """Conv2d on channels-last (B, H, W, C) input and output. Jittor's Conv2d reads NCHW only; this builds the
    same index pattern over NHWC memory, which Jittor's conv tuner runs as one oneDNN conv in that layout."""

    def execute(self, x: jt.Var) -> jt.Var:
        n, h, w, c = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        groups, out = self.groups, self.out_channels
        oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        shape = [n, groups, out // groups, c // groups, oh, ow, kh, kw]
        xx = x.reindex(shape, ["i0", f"i4*{sh}-{ph}+i6*{dh}", f"i5*{sw}-{pw}+i7*{dw}", f"i1*{c // groups}+i3"])
        ww = self.weight.reindex(shape, [f"i1*{out // groups}+i2", "i3", "i6", "i7"])
        xx.compile_options = ww.compile_options = {"G": groups, "C": c}  # as Conv2d: one kernel per grouping
        y = (xx * ww).reindex_reduce("add", [n, oh, ow, out], ["i0", "i4", "i5", f"i1*{out // groups}+i2"])
        return y if self.bias is None else y + self.bias


class AxialMix(nn.Module):
    """Mixes tokens along one spatial axis of channels-last (B, H, W, C) input with an (N, N) matrix plus bias."""

    def __init__(self, size: int, axis: str) -> None:
        if axis not in ("h", "w"):
            raise ValueError(f"axis must be 'h' or 'w', got {axis!r}")
        self.axis = axis
        # the official 1x1 Conv2d(N, N) init: kaiming_uniform(a=sqrt(5)), bias U(+-1/sqrt(N))
        self.weight = init.uniform((size, size), "float32", -1 / math.sqrt(size), 1 / math.sqrt(size))
        self.bias = init.uniform((size,), "float32", -1 / math.sqrt(size), 1 / math.sqrt(size))

    def execute(self, x: jt.Var) -> jt.Var:
        # Jittor multiplies batched matrices on the CPU with a slow loop, so the mixed axis goes first and
        # one (N, N) @ (N, rest) product does all; the bias is added once back in place, in the permute (our
        # multithreaded one: Jittor's transposes run on one CPU thread)
        order = (1, 0, 2, 3) if self.axis == "h" else (2, 0, 1, 3)
        rows = permute(x, order)
        mixed = jt.matmul(self.weight, rows.reshape(rows.shape[0], -1)).reshape(rows.shape)
        if self.axis == "h":
            return permute(mixed, order, self.bias, bias_axis=1)
        return permute(mixed, (1, 2, 0, 3), self.bias, bias_axis=2)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, size={self.weight.shape[0]}"


class WeightedSum(nn.Module):
    """The ``weighted`` fusion: the branches summed with one learned scalar each (ones at init: their plain sum)."""

    def __init__(self, branches: int) -> None:
        self.weight = jt.ones(branches)

    def execute(self, parts: list[jt.Var]) -> jt.Var:
        return weighted_sum(parts, self.weight)


class DenseTokenMix(nn.Module):
    """MLP-Mixer's token MLP over a stage's N = H*W tokens, shared over channels, on channels-last input: the
    token mixing of the paper's multi-stage baseline; hidden width ``DENSE_HIDDEN_RATIO * N``."""

    def __init__(self, grid: tuple[int, int], gelu: str = "exact") -> None:
        tokens = grid[0] * grid[1]
        self.mlp = Mlp(tokens, max(1, int(tokens * DENSE_HIDDEN_RATIO)), gelu)

    def execute(self, x: jt.Var) -> jt.Var:
        b, h, w, c = x.shape
        # the tokens last for the Linears' 2-D GEMMs (our permute: Jittor's transposes run on one CPU thread)
        return permute(self.mlp(permute(x.reshape(b, h * w, c), (0, 2, 1))), (0, 2, 1)).reshape(b, h, w, c)


class SparseTokenMix(nn.Module):
    """Depthwise 3x3 conv, then the sparse MLP ([identity, W-mix, H-mix] fused by a 1x1 conv), channels-last;
    ``options`` ablate its parts, ``sparse=False`` drops the global mixing (the depthwise part alone)."""

    def __init__(self, dim: int, grid: tuple[int, int], gelu: str = "exact", options: SMLPOptions = SMLPOptions(),
                 sparse: bool = True) -> None:
        self.fusion, self.identity, self.serial = options.fusion, options.identity, options.axial == "serial"
        if options.local:
            self.dw_norm = ChannelsLastBatchNorm(dim)
            self.dw_act = gelu_layer(gelu)
            self.dw_conv = ChannelsLastConv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        if not sparse:
            return
        self.mix_norm = ChannelsLastBatchNorm(dim)
        if options.token_mixing == "dense":  # Mixer's token MLP: a norm, then the MLP (its own GELU inside)
            self.token_mlp = DenseTokenMix(grid, gelu)
            return
        self.mix_act = gelu_layer(gelu)
        self.mix_w = AxialMix(grid[1], "w")
        self.mix_h = AxialMix(grid[0], "h")
        branches = 3 if options.identity else 2
        if options.fusion == "concat":
            self.fuse = nn.Conv2d(branches * dim, dim, 1, bias=False)
        elif options.fusion == "weighted":
            self.fuse = WeightedSum(branches)

    def execute(self, x: jt.Var) -> jt.Var:
        if hasattr(self, "dw_conv"):
            x = self.dw_conv(self.dw_act(self.dw_norm(x)))
        if hasattr(self, "token_mlp"):
            return self.token_mlp(self.mix_norm(x))
        if not hasattr(self, "mix_w"):
            return x
        x = self.mix_act(self.mix_norm(x))
        w = self.mix_w(x)
        parts = ([x] if self.identity else []) + [w, self.mix_h(w if self.serial else x)]
        if self.fusion == "concat":
            # the 1x1 fuse conv over the concat [x, W-mix, H-mix], without the concat
            return concat_linear(parts, self.fuse.weight.reshape(self.fuse.weight.shape[:2]))
        return self.fuse(parts) if self.fusion == "weighted" else sum(parts[1:], parts[0])


class SMLPBlock(nn.Module):
    def __init__(self, dim: int, grid: tuple[int, int], mlp_ratio: float = 3.0, drop_path: float = 0.0,
                 gelu: str = "exact", options: SMLPOptions = SMLPOptions(), sparse: bool = True) -> None:
        self.token_mix = SparseTokenMix(dim, grid, gelu, options, sparse)
        self.norm = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), gelu)
        self.drop_path = DropPath(drop_path)

    def execute(self, x: jt.Var) -> jt.Var:
        x = x + self.drop_path(self.token_mix(x))
        return residual_branch(x, self.norm, self.mlp, self.drop_path)  # x + drop_path(mlp(norm(x)))


class SMLPStage(nn.Module):
    """A 2x2 stride-2 downsampling conv (none in the first stage) and the stage's blocks."""

    def __init__(self, in_dim: int, dim: int, grid: tuple[int, int], depth: int, mlp_ratio: float,
                 drop_paths: list[float], gelu: str, downsample: bool, options: SMLPOptions = SMLPOptions(),
                 sparse: bool = True) -> None:
        self.downsample = ChannelsLastConv2d(in_dim, dim, 2, stride=2, bias=False) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[SMLPBlock(dim, grid, mlp_ratio, drop_paths[i], gelu, options, sparse)
                                      for i in range(depth)])

    def execute(self, x: jt.Var) -> jt.Var:
        return self.blocks(self.downsample(x))


class SMLPNet(nn.Module):
    def __init__(self, img_size: int | tuple[int, int] = 224, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 80, depths: tuple[int, ...] = (2, 8, 14, 2), mlp_ratio: float = 3.0,
                 drop_path_rate: float = 0.0, gelu: str = "exact", fusion: str = "concat", identity: bool = True,
                 axial: str = "parallel", local: bool = True,
                 sparse_stages: tuple[bool, ...] = (True, True, True, True), token_mixing: str = "sparse") -> None:
        """The published sMLPNet by default; ``fusion`` to ``token_mixing``: the paper's ablations (``SMLPOptions``)."""
        options = SMLPOptions(fusion, identity, axial, local, sparse_stages, token_mixing).for_depths(len(depths))
        self.build_options = options
        height, width = _pair(img_size)
        reduction = 4 * 2 ** (len(depths) - 1)
        if height % reduction or width % reduction:
            raise ValueError(f"img_size {(height, width)} must be divisible by {reduction}")
        self.img_size = (height, width)
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.num_features = dims[-1]
        rates = linear_drop_path_rates(drop_path_rate, sum(depths))
        self.stem = nn.Conv2d(in_chans, embed_dim, 4, stride=4, bias=False)
        stages, start = [], 0
        for i, depth in enumerate(depths):
            grid = (height // (4 * 2 ** i), width // (4 * 2 ** i))
            stages.append(SMLPStage(dims[max(i - 1, 0)], dims[i], grid, depth, mlp_ratio,
                                    rates[start:start + depth], gelu, i > 0, options, options.sparse_stages[i]))
            start += depth
        self.stages = nn.Sequential(*stages)
        self.norm = ChannelsLastBatchNorm(self.num_features)
        self.reset_classifier(num_classes)
        record = options.record()
        if record is not None:  # the ablations' record (the published model's keys stay the official ones)
            setattr(self, OPTIONS_KEY, jt.array(record).stop_grad())

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` (0: none, features only), with the default Linear init."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: jt.Var) -> jt.Var:
        """NCHW features."""
        x = self.stem(x).permute(0, 2, 3, 1)
        return self.norm(self.stages(x)).permute(0, 3, 1, 2)

    def forward_head(self, x: jt.Var, pre_logits: bool = False) -> jt.Var:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: jt.Var, indices: Indices = None) -> list[jt.Var]:
        """The outputs of the stages in ``indices`` (None: all; n: the last n), NCHW,
        strides 4 to 32, before the final norm; the forward stops after the last one asked for."""
        take = take_indices(len(self.stages), indices)
        x = self.stem(x).permute(0, 2, 3, 1)
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in take:
                out.append(x.permute(0, 3, 1, 2))
            if i == max(take):
                break
        return out

    def execute(self, x: jt.Var) -> jt.Var:
        return self.forward_head(self.forward_features(x))


def _smlpnet(name: str, **kwargs) -> SMLPNet:
    return SMLPNet(**{**variant(name).config, **kwargs})


@register_model
def smlpnet_t(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_t", **kwargs)


@register_model
def smlpnet_s(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_s", **kwargs)


@register_model
def smlpnet_b(**kwargs) -> SMLPNet:
    return _smlpnet("smlpnet_b", **kwargs)
