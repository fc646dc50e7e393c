#!/usr/bin/env python
"""`python tools/benchmark.py ...` from a clone = `mlp-zoo benchmark ...` (mlp_zoo/tools/benchmark.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("benchmark")
