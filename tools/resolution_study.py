#!/usr/bin/env python
"""`python tools/resolution_study.py ...` from a clone = `mlp-zoo resolution-study ...` (mlp_zoo/tools/resolution_study.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("resolution-study")
