#!/usr/bin/env python
"""`python tools/ablation_study.py ...` from a clone = `mlp-zoo ablation-study ...` (mlp_zoo/tools/ablation_study.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("ablation-study")
