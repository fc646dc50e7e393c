"""How a variant's cost grows with the image: the build for a given input size, the tokens it makes, and
least-squares growth exponents on log-log axes (``mlp-zoo compare --sizes``).

Each family takes other sizes its own way: MLP-Mixer and sMLPNet are built for the size (their token MLPs are
sized by the grid), ConvMLP is run as it is (convolutions and channel MLPs only), and ViP is built at the grid
the size gives (its permute MLPs fold each stage's grid into the channels, so every stage's grid must divide its
width).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mlp_zoo.model_specs import variant


def sized_build(name: str, size: int) -> tuple[dict[str, Any], int]:
    """(the build arguments for ``size`` x ``size`` input to variant ``name``, tokens at its first stage);
    ValueError naming the size for one the variant cannot take."""
    info = variant(name)
    config = info.config
    if size < 1:
        raise ValueError(f"{name}: image size must be positive, got {size}")
    if info.family == "convmlp":
        # the tokenizer (stride 4 in all, each stride-2 step rounding up) gives the first stage's grid
        side = ((size + 1) // 2 + 1) // 2
        return {}, side * side
    if info.family == "smlp":
        reduction = 4 * 2 ** (len(config["depths"]) - 1)
        if size % reduction:
            raise ValueError(f"{name} cannot take {size} px: sMLPNet's sizes are multiples of {reduction}")
        return ({} if size == 224 else {"img_size": size}), (size // 4) ** 2
    patch = config["patch_size"]
    if info.family == "mixer":
        if size % patch:
            raise ValueError(f"{name} cannot take {size} px: Mixer's sizes are multiples of its patch, {patch}")
        return ({} if size == 224 else {"img_size": size}), (size // patch) ** 2
    if info.family == "vip":
        stages = len(config["depths"])
        stride = patch * 2 ** (stages - 1)
        grids = tuple(size // (patch * 2 ** s) for s in range(stages))
        if size % stride or any(dim % g for dim, g in zip(config["embed_dims"], grids)):
            raise ValueError(f"{name} cannot take {size} px: ViP needs a multiple of {stride} whose stage grids "
                             f"divide the stage widths {tuple(config['embed_dims'])}")
        return ({} if grids == tuple(config["segment_dims"]) else {"segment_dims": grids}), grids[0] ** 2
    raise ValueError(f"{name}: no sizing rule for family {info.family!r}")


def growth_exponent(tokens: list[int], values: list[float]) -> float | None:
    """The slope of log(values) against log(tokens), least squares: values ~ N^slope. None with fewer than two
    distinct token counts."""
    if len(set(tokens)) < 2:
        return None
    slope, _ = np.polyfit(np.log(tokens), np.log(values), 1)
    return float(slope)


def exponents(records: list[Any]) -> list[dict[str, Any]]:
    """Per (model, framework): sizes, token counts and the growth exponents of MACs and of latency in N."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in records:
        groups.setdefault((r.model, r.framework), []).append(r)
    rows = []
    for (model, framework), rs in groups.items():
        tokens = [r.tokens for r in rs]
        rows.append(dict(model=model, framework=framework, sizes=[r.img_size for r in rs], tokens=tokens,
                         macs_exponent=growth_exponent(tokens, [r.macs for r in rs]),
                         latency_exponent=growth_exponent(tokens, [r.latency_ms for r in rs])))
    return rows


def exponents_table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = ["| model | framework | sizes | tokens N (first stage) | MACs ~ N^k: k | latency ~ N^k: k |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['framework']} | {' '.join(map(str, r['sizes']))} | "
                     f"{' '.join(map(str, r['tokens']))} | {fmt(r['macs_exponent'])} | "
                     f"{fmt(r['latency_exponent'])} |")
    return "\n".join(lines)


def write_growth_plot(records: list[Any], rows: list[dict[str, Any]], path: Any) -> None:
    """Log-log: MACs per image (left) and latency per batch (right) against the first stage's tokens; one
    colour per model, one line style per framework, the fitted exponent in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in records))
    frameworks = list(dict.fromkeys(r.framework for r in records))
    styles = dict(zip(frameworks, ["-o", "--s", ":^"]))
    fit = {(r["model"], r["framework"]): r for r in rows}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for i, model in enumerate(models):
        for fw in frameworks:
            rs = [r for r in records if r.model == model and r.framework == fw]
            if not rs:
                continue
            k = fit[model, fw]
            n = [r.tokens for r in rs]
            if fw == frameworks[0]:  # the counted MACs are the same in every framework
                left.plot(n, [r.macs for r in rs], styles[fw], color=f"C{i}",
                          label=f"{model} (k={k['macs_exponent']:.2f})" if k["macs_exponent"] is not None else model)
            right.plot(n, [r.latency_ms for r in rs], styles[fw], color=f"C{i}",
                       label=f"{model} {fw}" + (f" (k={k['latency_exponent']:.2f})"
                                                 if k["latency_exponent"] is not None else ""))
    r0 = records[0]
    left.set(xscale="log", yscale="log", xlabel="tokens N at the first stage", ylabel="MACs per image (G)",
             title="Work against tokens (MACs ~ N^k)")
    what = "training step" if r0.bench == "train" else "latency"
    right.set(xscale="log", yscale="log", xlabel="tokens N at the first stage",
              ylabel=f"{what} per batch of {r0.batch} (ms)", title=f"{what.capitalize()} against tokens ({r0.device})")
    for ax in (left, right):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
