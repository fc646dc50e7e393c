#!/usr/bin/env python
"""`python tools/validate.py ...` from a clone = `mlp-zoo validate ...` (mlp_zoo/tools/validate.py)."""
if __name__ == "__main__":  # not again in a spawned worker, which imports this file as __mp_main__
    import _clone

    _clone.run("validate")
