#!/usr/bin/env python
"""`python tools/predict.py ...` from a clone = `mlp-zoo predict ...` (mlp_zoo/tools/predict.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("predict")
