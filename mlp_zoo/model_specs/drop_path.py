"""Stochastic-depth schedules of the official implementations."""


def linear_drop_path_rates(rate: float, n_blocks: int) -> list[float]:
    """``rate * i / (n_blocks - 1)`` for block i of the whole net (sMLPNet, ViP)."""
    return [rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
