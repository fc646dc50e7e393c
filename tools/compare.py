#!/usr/bin/env python
"""`python tools/compare.py ...` from a clone = `mlp-zoo compare ...` (mlp_zoo/tools/compare.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("compare")
