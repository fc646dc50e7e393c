"""tools/compare.py --torch-compile: every family compiles in one graph (``fullgraph=True``, as compare.py asks)
and a second call of the same shape does not recompile. Only Dynamo's tracing runs (into a counting backend):
no inductor code generation, which takes minutes on this machine."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

import models_pytorch
from mlp_zoo.tools.scaling import sized_build

# every family, shallow (their blocks are all alike) and at a small size
SMALL = [("smlpnet_t", 64, dict(depths=(1, 1, 1, 1))), ("mixer_s32", 64, dict(depth=2)),
         ("vip_s7", 112, dict(depths=(1, 1))), ("convmlp_s", 64, dict(depths=(1, 1, 1), n_conv_blocks=1))]


@pytest.mark.parametrize("name,size,small", SMALL, ids=[s[0] for s in SMALL])
def test_every_family_compiles_in_one_graph_without_recompiling(name, size, small):
    kwargs, _ = sized_build(name, size)
    torch.manual_seed(0)
    model = models_pytorch.create_model(name, **kwargs, **small, drop_path_rate=0.0).eval()
    x, other = torch.randn(2, 3, size, size), torch.randn(2, 3, size, size)

    torch._dynamo.reset()
    counter = CompileCounter()
    # fullgraph=True, as compare.py compiles: any graph break raises (what torch._dynamo.explain would count)
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    with torch.inference_mode():  # as compare.py times inference
        first = compiled(x)
        # the same shape, other values: no recompile (made outside inference mode, as x: an inference tensor
        # would be guarded apart)
        second = compiled(other)
        assert counter.frame_count == 1
        assert counter.op_count > 10  # the model's graph, not an empty one
        # the counting backend runs the traced graph as it is: the model's function
        assert torch.allclose(first, model(x), atol=1e-5)
        assert torch.allclose(second, model(other), atol=1e-5)
