"""Twin pairs: the same weights built in PyTorch and in Jittor, a shared random input, their logits compared."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlp_zoo.model_specs import variant
from mlp_zoo.model_specs.smlp import OPTIONS_KEY


@dataclass
class CrossCheck:
    model: str
    max_abs_diff: float
    max_abs_logit: float
    torch_s: float
    jittor_s: float  # first call: includes Jittor's JIT compilation of new op shapes
    input_sensitivity: float  # max abs change of the logits between the batch's samples (0 for one sample)

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.max_abs_logit, 1e-12)


def input_size(kwargs: dict[str, Any], name: str | None = None) -> tuple[int, int]:
    if name and "segment_dims" in kwargs:  # a ViP built for another grid: its first stage's grid in pixels
        config = {**variant(name).config, **kwargs}
        side = config["segment_dims"][0] * config["patch_size"]
        return side, side
    size = kwargs.get("img_size", 224)
    return (size, size) if isinstance(size, int) else tuple(size)


def random_input(batch: int, kwargs: dict[str, Any], seed: int = 0, name: str | None = None) -> np.ndarray:
    """A standard-normal image batch of the size the variant built with ``kwargs`` takes."""
    shape = (batch, kwargs.get("in_chans", 3), *input_size(kwargs, name))
    return np.random.RandomState(seed).standard_normal(shape).astype(np.float32)


def random_weights(name: str, seed: int = 0, **kwargs: Any) -> dict[str, np.ndarray]:
    """A state for variant ``name`` whose logits depend on every weight, as numpy: PyTorch's init, with every
    vector (biases, norm affines, BatchNorm statistics and counters) randomised, so that loading each of them
    is tested, and zero-initialised matrices (such as Mixer's head) drawn from N(0, 1/fan_in)."""
    import torch

    import models_pytorch

    torch.manual_seed(seed)
    model = models_pytorch.create_model(name, **kwargs)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key == OPTIONS_KEY:  # sMLPNet's record of its build options, not a weight
                continue
            if key.endswith("running_mean"):
                value.normal_(0.0, 0.5, generator=g)
            elif key.endswith("running_var"):
                value.uniform_(0.5, 2.0, generator=g)
            elif key.endswith("num_batches_tracked"):
                value.fill_(int(torch.randint(1, 10_000, (), generator=g)))
            elif value.ndim == 1:
                value.add_(torch.randn(value.shape, generator=g) * 0.1)
            elif not value.any():
                value.normal_(0.0, value[0].numel() ** -0.5, generator=g)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def build_torch(name: str, state: dict[str, np.ndarray], device: str = "cpu", **kwargs: Any) -> Any:
    """The PyTorch variant ``name`` holding ``state``, in eval mode, on ``device``."""
    import models_pytorch

    model = models_pytorch.create_model(name, **kwargs)
    models_pytorch.load_state(model, state)
    return model.eval().to(device)


def build_jittor(name: str, state: dict[str, np.ndarray], **kwargs: Any) -> Any:
    """The Jittor variant ``name`` holding ``state``, in eval mode (on CUDA while ``jittor_device('cuda')``)."""
    import models_jittor

    model = models_jittor.create_model(name, **kwargs)
    models_jittor.load_state(model, state)
    model.eval()
    return model


class jittor_device:
    """Context manager running Jittor on ``device`` ('cpu' or 'cuda'), restoring CPU afterwards. On CUDA both
    frameworks compute in full fp32 (no TF32 tensor cores), so that their differences are the models', not the
    matmul precision's."""

    def __init__(self, device: str) -> None:
        self.device = device

    def __enter__(self) -> None:
        from mlp_zoo.jittor_support.runtime import jt

        jt.flags.use_cuda = int(self.device == "cuda")
        if self.device == "cuda":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            jt.flags.use_tensorcore = 0

    def __exit__(self, *exc: object) -> None:
        from mlp_zoo.jittor_support.runtime import jt

        jt.flags.use_cuda = 0


def cross_check(name: str, state: dict[str, np.ndarray], batch: int = 2, seed: int = 0,
                device: str = "cpu", **kwargs: Any) -> CrossCheck:
    """Load ``state`` into both frameworks' ``name`` (built with ``kwargs``) and compare eval-mode logits."""
    import torch

    from mlp_zoo.jittor_support.runtime import jt

    x = random_input(batch, kwargs, seed, name)
    with jittor_device(device):
        tm, jm = build_torch(name, state, device, **kwargs), build_jittor(name, state, **kwargs)
        with torch.no_grad():
            start = time.perf_counter()
            a = tm(torch.from_numpy(x).to(device)).cpu().numpy()
            torch_s = time.perf_counter() - start
        with jt.no_grad():
            start = time.perf_counter()
            b = jm(jt.array(x)).numpy()
            jittor_s = time.perf_counter() - start
    return CrossCheck(name, float(np.abs(a - b).max()), float(np.abs(a).max()), torch_s, jittor_s,
                      float(np.abs(a - a[::-1]).max()))
